"""Saved standalone subnets: a directory with ``subnet.yaml`` and ``model.safetensors``.

``subnet.yaml`` holds the search space (``space:``, which names the model family), the
architecture (``subnet:``), what the model needs to be fed (``preprocessing:``, see
:mod:`supernet.preprocessing`; exports written before it existed lack it) and free-form
``metadata:``; ``model.safetensors`` the weights (no pickle, so loading can never run code).
:func:`load_subnet` rebuilds the family's standalone model (a
:class:`~supernet.vit.VisionTransformer`, a Swin ``SwinTransformer`` ...) without a supernet, with
its preprocessing attached (``model.preprocessing``, and timm's ``model.pretrained_cfg``);
:func:`load_preprocessing` reads the preprocessing alone.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .common.atomic import (
    check_target_dir,
    default_mode,
    move_into_place,
    remove_stale_staging,
    staging_dir,
    write_error,
    writing,
)
from .common.errors import CheckpointError
from .common.torchfile import state_dict_problem
from .common.yamlio import YamlError, read_yaml
from .family import family_of
from .onnx_export import ONNX_FILE
from .preprocessing import Preprocessing, PreprocessingError
from .space import Space, SpaceError, Subnet

__all__ = [
    "CONFIG_FILE",
    "EXPORT_FILES",
    "EXPORT_TARGET",
    "WEIGHTS_FILE",
    "check_finite",
    "load_preprocessing",
    "load_subnet",
    "read_subnet_yaml",
    "save_subnet",
]

CONFIG_FILE = "subnet.yaml"
WEIGHTS_FILE = "model.safetensors"
#: The files an export directory holds (its README too): ``overwrite`` replaces only these.
EXPORT_FILES = frozenset({CONFIG_FILE, WEIGHTS_FILE, ONNX_FILE, "README.md"})
#: What ``overwrite`` may replace (:func:`~supernet.common.atomic.check_target_dir`'s last three
#: arguments): an export's files only, and at least its config and weights.
EXPORT_TARGET = (EXPORT_FILES, "an export", (frozenset({CONFIG_FILE, WEIGHTS_FILE}),))


def save_subnet(
    model: nn.Module,
    space: Space,
    directory: str | Path,
    metadata: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, str | Callable[[dict[str, Any]], str]] | None = None,
    overwrite: bool = False,
    shown_as: str | Path | None = None,
    preprocessing: Preprocessing | None = None,
    onnx: bool = False,
) -> Path:
    """Write ``model`` to ``directory`` all at once: it is built beside it, then renamed into place.

    An existing non-empty directory is kept unless ``overwrite``; ``extra_files`` maps file names
    to text contents written alongside (a README, say), or to functions of the metadata written
    that return it. ``shown_as``: the directory error messages name (where a caller staging
    ``directory`` will move it). ``preprocessing``: how raw images become the model's input
    (``supernet.data.DataSplits.preprocessing``). ``onnx``: also write ``model.onnx`` (checked
    against PyTorch, see :func:`supernet.onnx_export.write_onnx`); the metadata records it
    under ``onnx:``.
    """
    directory = Path(directory)
    shown = Path(shown_as) if shown_as is not None else directory
    with writing(directory):
        remove_stale_staging(directory)  # what a save killed half-way left
    check_target_dir(
        directory, overwrite, f"export target {directory}", "overwrite=True", *EXPORT_TARGET
    )
    subnet: Subnet = model.subnet  # type: ignore[assignment]
    space.validate(subnet)
    tmp = staging_dir(directory)
    try:
        config: dict[str, Any] = {"space": space.to_dict(), "subnet": subnet.to_dict()}
        if preprocessing is not None:
            config["preprocessing"] = preprocessing.to_dict()
        config["metadata"] = dict(metadata or {})
        if onnx:
            from .onnx_export import write_onnx

            with writing(shown / ONNX_FILE):
                diff = write_onnx(model.eval(), space, tmp / ONNX_FILE, preprocessing)
            config["metadata"]["onnx"] = {
                "file": ONNX_FILE,
                "max_abs_diff": diff,
                "checked_with": "onnxruntime",
            }
        # Errors name the file being written at its final place (a full disk, say).
        with writing(shown / CONFIG_FILE):
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        with writing(shown / WEIGHTS_FILE):
            try:
                save_file(state, str(tmp / WEIGHTS_FILE))
            except SafetensorError as exc:  # ENOSPC comes as this, not as an OSError
                raise write_error(exc, tmp) from exc
            os.chmod(tmp / WEIGHTS_FILE, default_mode())  # safetensors writes owner-only files
        for name, text in (extra_files or {}).items():
            if callable(text):
                text = text(config["metadata"])
            with writing(shown / name):
                (tmp / name).write_text(text)
        with writing(shown):
            move_into_place(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


_FIX = "export it again with `python -m search.export`, or restore it from a copy"


def _read_config(directory: str | Path) -> tuple[Path, Any]:
    path = Path(directory)
    if path.is_dir():
        path = path / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"no {CONFIG_FILE} at {path.parent}: not an exported subnet")
    try:
        return path, read_yaml(path, "subnet file")
    except YamlError as exc:
        raise CheckpointError(f"{exc}; {_FIX}") from None


def read_subnet_yaml(directory: str | Path) -> tuple[Space, Subnet, dict[str, Any]]:
    """The space, subnet and metadata of a saved subnet directory (or its ``subnet.yaml``)."""
    fix = _FIX
    path, data = _read_config(directory)
    if not isinstance(data, Mapping) or not {"space", "subnet"} <= set(data):
        raise CheckpointError(
            f"{path} is not a valid subnet file: it needs the mappings space: and subnet:; {fix}"
        )
    try:
        space = Space.from_dict(data["space"])
        subnet = space.subnet_from_dict(data["subnet"])
    except (KeyError, TypeError, SpaceError) as exc:
        raise CheckpointError(f"{path} is not a valid subnet file: {exc}; {fix}") from None
    metadata = data.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise CheckpointError(
            f"{path} is not a valid subnet file: metadata: must be a mapping, got "
            f"{type(metadata).__name__}; {fix}"
        )
    return space, subnet, dict(metadata)


def read_preprocessing(directory: str | Path) -> Preprocessing | None:
    """The ``preprocessing:`` of a saved subnet directory (or its ``subnet.yaml``); None for an
    export written before exports recorded it."""
    path, data = _read_config(directory)
    recorded = data.get("preprocessing") if isinstance(data, Mapping) else None
    if recorded is None:
        return None
    try:
        return Preprocessing.from_dict(recorded)
    except (PreprocessingError, TypeError) as exc:
        raise CheckpointError(
            f"{path} is not a valid subnet file: its preprocessing: is invalid ({exc}); {_FIX}"
        ) from None


def load_preprocessing(directory: str | Path) -> Preprocessing:
    """How raw images become the input of the model exported to ``directory``: a callable
    (raw images → float32 (N, C, H, W) tensor) that also says it in numbers
    (:class:`~supernet.preprocessing.Preprocessing`)."""
    found = read_preprocessing(directory)
    if found is None:
        raise CheckpointError(
            f"{Path(directory)} records no preprocessing (it was exported before exports did); "
            "export it again with `python -m search.export` (or normalise as the supernet's "
            "training data did)"
        )
    return found


def check_finite(state: Mapping[str, torch.Tensor], path: str | Path, fix: str) -> None:
    """Refuse weights holding NaN or infinity (a diverged training saved by another tool, a
    corrupted file): searching or fine-tuning them gives meaningless results."""
    bad = []
    for name, tensor in state.items():
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    if bad:
        kinds = "NaN or infinite"
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise CheckpointError(
            f"{path} holds {kinds} weights (in {', '.join(bad[:3])}{more}); {fix}"
        )


def load_subnet(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load an exported subnet as a ready ``nn.Module`` in eval mode. No supernet needed.

    ``model.preprocessing`` turns raw images into its input (None for an export that predates
    recorded preprocessing); ``model.pretrained_cfg`` is timm's data config."""
    directory = Path(directory)
    space, subnet, _ = read_subnet_yaml(directory)
    preprocessing = read_preprocessing(directory)
    weights = directory / WEIGHTS_FILE
    if weights.exists() and not weights.is_file():
        raise CheckpointError(
            f"{weights} is not a regular file (a directory, a pipe or a device); export the "
            "subnet again, or restore the file from a copy"
        )
    if not weights.is_file():
        raise CheckpointError(
            f"no {WEIGHTS_FILE} in {directory}; export the subnet again, or restore the file "
            "from a copy"
        )
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"cannot read {weights}: truncated or corrupt ({exc}); export it again or restore it "
            "from a copy"
        ) from None
    check_finite(
        state, weights, "export the subnet again from a supernet whose training did not diverge"
    )
    model = family_of(space).build_model(space, subnet)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{weights} does not match {CONFIG_FILE} ({state_dict_problem(exc)}); export the "
            "subnet again, or restore both files from one copy"
        ) from None
    attach_preprocessing(model, preprocessing, space.num_classes)
    return model.to(map_location).eval()


def attach_preprocessing(
    model: nn.Module, preprocessing: Preprocessing | None, num_classes: int
) -> None:
    """``model.preprocessing`` (None when unknown) and, when known, timm's
    ``model.pretrained_cfg`` (what ``timm.data.resolve_model_data_config(model)`` reads)."""
    model.preprocessing = preprocessing  # type: ignore[assignment]
    if preprocessing is not None:
        model.pretrained_cfg = preprocessing.pretrained_cfg(num_classes)  # type: ignore[assignment]
