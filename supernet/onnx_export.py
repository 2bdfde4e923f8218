"""ONNX export of a standalone model, checked against PyTorch with onnxruntime.

The model is exported with the dynamo exporter (``torch.onnx.export(..., dynamo=True)``; the
legacy exporter lacks ``roll``, which shifted-window attention needs) with a dynamic batch, input
``images`` and output ``logits``, and then run on random images by onnxruntime: the largest
absolute difference from PyTorch is returned, and :func:`write_onnx` refuses a file that differs
by more than :data:`ONNX_TOLERANCE`. :func:`write_onnx` also records the model's preprocessing in
the file's ``metadata_props`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``): one
key per field of :class:`~supernet.preprocessing.Preprocessing`, as JSON text, and ``formula``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from .common.errors import UserError
from .preprocessing import Preprocessing
from .space import Space

__all__ = [
    "ONNX_FILE",
    "ONNX_TOLERANCE",
    "add_metadata",
    "export_onnx",
    "onnx_missing",
    "onnx_wanted",
    "write_onnx",
]

#: The ONNX file's name in an export directory.
ONNX_FILE = "model.onnx"

#: The largest absolute logit difference from PyTorch an exported ONNX file may show.
ONNX_TOLERANCE = 1e-4


#: The exporter's loggers: their INFO lines (one per folded constant or deduplicated initializer,
#: dozens per model) would flood a training run's log, whose root logger Hydra sets to INFO.
ONNX_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx")


@contextlib.contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    """Only warnings and errors from the loggers ``names`` while the body runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(model: torch.nn.Module, space: Space, path: Path) -> float:
    """Write ``model`` as ONNX (dynamic batch; input ``images``, output ``logits``) and return
    the largest absolute difference from PyTorch on random images (batches of 1 and 4)."""
    import onnxruntime

    from .common.cli import interrupts_kept

    model = model.eval()
    example = torch.randn(2, space.in_chans, space.img_size, space.img_size)
    with interrupts_kept(), _quiet(ONNX_LOGGERS):  # Ctrl-C: "interrupted", not a TorchExportError
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,  # one self-contained file (fine below 2 GB of weights)
            verbose=False,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 4):
        x = torch.randn(batch, space.in_chans, space.img_size, space.img_size, generator=generator)
        (got,) = session.run(["logits"], {"images": x.numpy()})
        with torch.inference_mode():
            want = model(x)
        worst = max(worst, float((torch.from_numpy(got) - want).abs().max()))
    return worst


def onnx_wanted(mode: object, quiet: bool = False) -> bool:
    """Whether an ``onnx=auto|true|false`` option asks for (and can have) ``model.onnx``.

    ``true`` without the packages is an error; ``auto`` without them says so (unless ``quiet``:
    a check before the work) and goes on.
    """
    choice = str(mode).lower()
    if choice not in ("auto", "true", "false"):
        raise UserError(f"onnx must be auto, true or false, got {mode!r}; pass onnx=auto")
    if choice == "false":
        return False
    missing = onnx_missing()
    if missing and choice == "true":
        raise UserError(f"onnx=true needs {missing}: pip install 'vitnas[onnx]'")
    if missing and not quiet:
        print(f"note: no model.onnx: {missing} not installed (pip install 'vitnas[onnx]')")
    return not missing


def onnx_missing() -> str | None:
    """None when ONNX export can run, else what is missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return ", ".join(missing) or None


def add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Set ``metadata`` (string keys and values) in the ONNX file's ``metadata_props``."""
    import onnx

    proto = onnx.load(str(path))
    kept = [p for p in proto.metadata_props if p.key not in metadata]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def write_onnx(
    model: torch.nn.Module,
    space: Space,
    path: Path,
    preprocessing: Preprocessing | None = None,
) -> float:
    """:func:`export_onnx`, refusing (in one line) a file that differs from PyTorch by more than
    :data:`ONNX_TOLERANCE`, with ``preprocessing`` in its metadata; returns the difference."""
    diff = export_onnx(model, space, path)
    if diff > ONNX_TOLERANCE:
        raise UserError(
            f"the ONNX model differs from PyTorch by {diff:.2e} (> {ONNX_TOLERANCE:g}); "
            "export without it with onnx=false"
        )
    if preprocessing is not None:
        add_metadata(path, preprocessing.onnx_metadata())
    return diff
