"""Supernet checkpoints: atomic writes and safe reads.

A checkpoint is a plain dict saved with ``torch.save``; it is read back with
``torch.load(weights_only=True)``, so a crafted pickle can never run code. It always holds
``format``, ``version``, ``space`` (the search space as a dict) and ``model`` (the supernet's
state dict); training adds its own entries (optimizer, scheduler, RNG states, epoch, config,
``data`` and the ``preprocessing`` it implies, which exports carry).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .common.atomic import atomic_write
from .common.device import check_device
from .common.errors import CheckpointError, quoted
from .common.resources import check_memory
from .common.torchfile import ReadError, load_torch_file, state_dict_problem
from .model import Supernet, weight_count
from .preprocessing import Preprocessing, PreprocessingError
from .saved_model import check_finite
from .space import Space, SpaceError

__all__ = [
    "FORMAT",
    "checkpoint_preprocessing",
    "file_sha256",
    "load_checkpoint",
    "load_supernet",
    "save_checkpoint",
]

FORMAT = "vitnas-supernet"
VERSION = 1


def save_checkpoint(path: str | Path, net: Supernet, **extra: Any) -> None:
    """Write ``net``'s weights and space, plus ``extra`` entries, atomically to ``path``."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "space": net.space.to_dict(),
        "model": net.state_dict(),
        **extra,
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    expected_format: str = FORMAT,
) -> dict[str, Any]:
    """Read a checkpoint dict safely, with one clear error for each way it can be unusable.

    ``expected_format`` is the ``format`` entry it must carry (another tool's file, or a
    single-subnet training checkpoint where a supernet is expected, is refused). Weights that are
    not finite (NaN, infinity) are refused too.
    """
    map_location = check_device(map_location)
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"checkpoint not found: {path} (train one with `python -m supernet.train`)"
        )
    if path.is_dir():
        if (path / "supernet.pt").is_file():
            path = path / "supernet.pt"
        else:
            raise CheckpointError(
                f"{path} is a directory without a supernet.pt checkpoint; give a training run's "
                "directory or its supernet.pt (train one with `python -m supernet.train`)"
            )
    _check_regular_file(path)
    try:
        payload = load_torch_file(path, map_location=map_location, what="checkpoint")
    except ReadError as exc:
        raise CheckpointError(
            f"{exc}; use a checkpoint written by `python -m supernet.train` (a damaged one: "
            "restore it from a copy, or remove it and train again)"
        ) from None
    what = "supernet" if expected_format == FORMAT else f"{expected_format!r}"
    if not isinstance(payload, Mapping) or payload.get("format") != expected_format:
        raise CheckpointError(
            f"{path} is not a {what} checkpoint of this tool; give one written by "
            f"`python -m supernet.train`"
        )
    version = payload.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(
            f"{path} is not a {what} checkpoint of this tool (its version is "
            f"{quoted(version)}, not a number); give one written by `python -m supernet.train`"
        )
    if version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer version of this tool (format {version}, this one "
            f"reads up to {VERSION}); upgrade vitnas to read it"
        )
    model = payload.get("model")
    if not isinstance(model, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items()
    ):
        kind = type(model).__name__ if not isinstance(model, Mapping) else "mapping of non-tensors"
        raise CheckpointError(
            f"{path} is not a {what} checkpoint of this tool: its model entry is a {kind}, not "
            "the weights; give one written by `python -m supernet.train`"
        )
    check_finite(
        model,
        path,
        "it cannot be searched, fine-tuned or resumed; use an earlier checkpoint, or train "
        "again with a lower train.lr",
    )
    return dict(payload)


def checkpoint_space(payload: Mapping[str, Any], path: str | Path = "checkpoint") -> Space:
    try:
        return Space.from_dict(payload["space"])
    except (KeyError, SpaceError) as exc:
        raise CheckpointError(
            f"{path} holds no valid search space: {exc}; give a checkpoint written by "
            "`python -m supernet.train` (or restore it from a copy)"
        ) from None


def check_same_space(found: Space, expected: Space, path: str | Path) -> None:
    """Fail naming every field in which a checkpoint's space differs from the requested one."""
    diff = found.differences(expected)
    if diff:
        detail = "; ".join(
            f"{name}: checkpoint {getattr(found, name)!r}, requested {getattr(expected, name)!r}"
            for name in diff
        )
        raise CheckpointError(
            f"{path} was trained for another search space ({detail}); ask for the space it was "
            "trained with"
        )


def load_supernet(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    space: Space | None = None,
) -> tuple[Supernet, dict[str, Any]]:
    """Rebuild the supernet stored in a checkpoint. Returns ``(net, checkpoint_dict)``.

    With ``space`` given, a checkpoint of any other space fails naming the differing fields.
    """
    payload = load_checkpoint(path, map_location)
    found = checkpoint_space(payload, path)
    if space is not None:
        check_same_space(found, space, path)
    count = weight_count(found)
    check_memory(
        4 * count,
        f"{path} holds a supernet of {count:,} float32 weights: it",
        "load it on a machine with more free memory",
    )
    net = Supernet(found)
    try:
        net.load_state_dict(payload["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path}: weights do not match its search space ({state_dict_problem(exc)}); the "
            "file was altered: restore it from a copy, or train again"
        ) from None
    return net.to(map_location), payload


def _check_regular_file(path: Path) -> None:
    """Refuse a path that exists but is no regular file: reading a FIFO blocks for ever, and
    /dev/null reads as an empty file."""
    if not path.is_file():
        raise CheckpointError(
            f"{path} is not a regular file (a pipe, a device or a socket); give a checkpoint file "
            "written by `python -m supernet.train`"
        )


def file_sha256(path: str | Path) -> str:
    _check_regular_file(Path(path))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_preprocessing(payload: Mapping[str, Any], path: str | Path) -> Preprocessing:
    """How raw images become the input of the checkpoint's models: its recorded
    ``preprocessing`` or, for a checkpoint written before training recorded it, what its
    ``data`` config implies (computed from that data, which must then be where it says)."""
    from .data import DataError, data_preprocessing

    recorded = payload.get("preprocessing")
    if recorded is not None:
        try:
            return Preprocessing.from_dict(recorded)
        except (PreprocessingError, TypeError) as exc:
            raise CheckpointError(
                f"{path} holds an invalid preprocessing record ({exc}); restore it from a copy"
            ) from None
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise CheckpointError(
            f"{path} records neither its preprocessing nor its data config; use a checkpoint "
            "written by `python -m supernet.train`"
        )
    try:
        return data_preprocessing(data)
    except DataError as exc:
        raise CheckpointError(
            f"{path} predates recorded preprocessing, and its training data, needed to compute "
            f"it, cannot be read ({exc})"
        ) from None
