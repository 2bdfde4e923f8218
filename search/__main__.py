"""``python -m search``: the Hydra app that searches a trained supernet's subnets.

    python -m search supernet=runs/demo/supernet.pt budget.flops=2M search.n_trials=100
    python -m search --multirun supernet=... budget.flops=1M,2M search.sampler=nsga2,random seed=0,1

Config: ``conf/search.yaml`` with the groups ``search`` and ``budget``; ``--help`` lists them,
``--cfg job`` prints the composed config. Outputs go to Hydra's run dir (``hydra.run.dir=...``).
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from supernet.common.cli import hydra_main, user_errors

from .runner import job_overrides, run_search


@hydra.main(config_path="../supernet/conf", config_name="search", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    result = run_search(
        cfg,
        Path(hydra_cfg.runtime.output_dir),
        overrides=job_overrides(list(hydra_cfg.overrides.task), cfg),
    )
    best = result.best
    return None if best is None else float(best["val_acc"])


def cli() -> None:
    """The console script (``vitnas-...``): the same as ``python -m``."""
    hydra_main(main)


if __name__ == "__main__":
    cli()
