"""``python -m supernet.train``: the Hydra entry point (see :mod:`supernet.train`)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import hydra

# The first optimizer imports torch._dynamo (with triton and sympy: a second or more) lazily.
# Imported here, while Ctrl-C still stops the command at once and quietly (see
# supernet.common.startup): a Ctrl-C inside that import chain sometimes made Python kill itself
# with SIGINT at exit although the command had handled it.
import torch._dynamo  # noqa: F401
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from supernet.common.cli import hydra_main, user_errors
from supernet.train import run
from supernet.train.app import is_rank_zero, register_resolvers, run_config

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    own_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        run(run_config(cfg, own_dir, list(hydra_cfg.overrides.task)))
    finally:
        # Under torchrun every rank's Hydra made a run directory; rank 0's is the one used.
        # Another rank's differs only if its clock ticked over: remove it if it stayed empty.
        if not is_rank_zero():
            with contextlib.suppress(OSError):
                own_dir.rmdir()


def cli() -> None:
    """The console script (``vitnas-...``): the same as ``python -m``."""
    hydra_main(main)


if __name__ == "__main__":
    cli()
