"""Finding the checkpoint a run continues, and refusing to continue it with other settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..data import DataConfig, DataError
from .config import DISPLAY_ONLY, ConfigError, TrainConfig

__all__ = ["OtherSettings", "check_same_settings", "resume_path"]


class OtherSettings(ConfigError):
    """A checkpoint to continue that was trained with other settings: ``problem`` says which,
    and the message adds what to do (a caller that made the run, as search.rank does, says
    its own)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}; {fix}")
        self.problem = problem


def resume_path(resume: bool | str, run_dir: Path, name: str) -> Path | None:
    """The checkpoint to continue from, or ``None`` for a fresh run.

    ``resume`` is ``False`` (fresh), ``True`` (``run_dir``'s checkpoint, which must exist),
    ``"auto"`` (``run_dir``'s checkpoint if there is one: a rerun or a requeued job picks up
    where it stopped) or a checkpoint path. A fresh run never overwrites another run's
    checkpoint: if ``run_dir`` holds one already, the user must say ``resume=true`` (or
    ``auto``) or pick another directory.
    """
    own = run_dir / name
    if resume == "auto":  # continue if there is something to continue, else start
        return own if own.is_file() else None
    if resume is False:
        if own.exists():
            raise ConfigError(
                f"{own} already exists; pass resume=true (or resume=auto) to continue that run, "
                "or choose another hydra.run.dir"
            )
        return None
    if resume is True:
        if not own.is_file():
            raise ConfigError(
                f"nothing to resume: no {name} in {run_dir}; pass hydra.run.dir=<the stopped "
                "run's directory> (or resume=<path to its checkpoint>)"
            )
        return own
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / name
    if path.exists() and not path.is_file():
        raise ConfigError(
            f"resume={resume}: {path} is not a regular file (a pipe, a device or a socket); give "
            "the path of a checkpoint, or resume=true to continue the one in hydra.run.dir"
        )
    if not path.is_file():
        raise ConfigError(
            f"resume={resume}: no checkpoint at {path}; give the path of a checkpoint, or "
            "resume=true to continue the one in hydra.run.dir"
        )
    if own.exists() and own.resolve() != path.resolve():
        raise ConfigError(
            f"{own} already exists; resume it with resume=true, or choose another hydra.run.dir"
        )
    return path


def _flat(prefix: str, data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(f"{prefix}{key}.", value))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_same_settings(
    payload: Mapping[str, Any],
    path: Path,
    *,
    data: DataConfig,
    train: TrainConfig,
    seed: int,
) -> None:
    """Fail naming every data/train option (and the seed) in which a run differs from its
    checkpoint: continuing with other settings would not be the same run."""
    try:
        saved_data = DataConfig.from_dict(payload["data"])
        saved_train = TrainConfig.from_dict(payload["train"], min_epochs=0)
    except (KeyError, DataError, ConfigError) as exc:
        raise ConfigError(f"{path} holds no usable training settings ({exc})") from None
    before = {
        **_flat("data.", dataclasses.asdict(saved_data)),
        **_flat("train.", saved_train.to_dict()),
        "seed": payload.get("seed"),
    }
    now = {
        **_flat("data.", dataclasses.asdict(data)),
        **_flat("train.", train.to_dict()),
        "seed": seed,
    }
    diff = [
        f"{k}: checkpoint {before[k]!r}, requested {now[k]!r}"
        for k in now
        if before.get(k) != now[k] and k.removeprefix("train.") not in DISPLAY_ONLY
    ]
    if diff:
        raise OtherSettings(
            f"cannot resume {path} with other settings ({'; '.join(diff)})",
            "repeat the original overrides (its run directory's .hydra/overrides.yaml lists them) "
            "or start a new run",
        )
