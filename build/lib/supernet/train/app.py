"""Glue between Hydra and :func:`supernet.train.run`, kept apart from ``__main__`` for tests.

Under ``torchrun`` every rank runs the Hydra app. Only rank 0 may write to the run directory, so
two resolvers used by ``conf/train.yaml`` turn Hydra's own outputs off on the other ranks: the
``.hydra/`` config copies (``hydra.output_subdir``) and the log file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import ConfigError, RunConfig

__all__ = ["is_rank_zero", "register_resolvers", "run_config"]


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _rank0_subdir(subdir: str) -> str | None:
    return subdir if is_rank_zero() else None


def _rank0_log(path: str) -> str:
    return path if is_rank_zero() else os.devnull


def register_resolvers() -> None:
    OmegaConf.register_new_resolver("vitnas.rank0_subdir", _rank0_subdir, replace=True)
    OmegaConf.register_new_resolver("vitnas.rank0_log", _rank0_log, replace=True)


def _explicit(overrides: list[str], key: str) -> bool:
    """Whether the command line overrides ``key`` (``key=...`` or ``key.x=...``)."""
    names = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    return any(n == key or n.startswith(f"{key}.") for n in names)


def run_config(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> RunConfig:
    """The composed Hydra config as a :class:`RunConfig`.

    In the subnet modes the space comes with the subnet (export, checkpoint); the ``space``
    group's default is dropped unless the command line chose one, which is then checked.
    """
    try:
        values: Any = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None
    if values.get("mode") in ("finetune", "scratch") and not _explicit(overrides, "space"):
        values["space"] = None
    return RunConfig.from_dict(values, run_dir=run_dir)
