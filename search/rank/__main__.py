"""``python -m search.rank``: the Hydra app that ranks a supernet's subnets (see
:mod:`search.rank`).

    python -m search.rank supernet=runs/demo/supernet.pt k=12 train.epochs=10 n_jobs=2

Config: ``conf/rank.yaml``; ``--cfg job`` prints it. Outputs go to Hydra's run dir.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from supernet.common.cli import hydra_main, user_errors

from . import config as _config  # noqa: F401  (registers rank_schema)
from .runner import run_ranking


@hydra.main(config_path="../../supernet/conf", config_name="rank", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float:
    result = run_ranking(cfg, Path(HydraConfig.get().runtime.output_dir))
    return float(result.stats["kendall_tau"])


def cli() -> None:
    """The console script (``vitnas-...``): the same as ``python -m``."""
    hydra_main(main)


if __name__ == "__main__":
    cli()
