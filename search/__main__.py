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
from hydra.types import RunMode
from omegaconf import DictConfig

from supernet.common.cli import hydra_main, user_errors

from .runner import job_overrides, run_search


@hydra.main(config_path="../supernet/conf", config_name="search", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    result = run_search(
        cfg,
        run_dir,
        overrides=job_overrides(list(hydra_cfg.overrides.task), cfg),
        plotlyjs_dir=_sweep_root(run_dir),
    )
    best = result.best
    return None if best is None else float(best["val_acc"])


def _sweep_root(run_dir: Path) -> Path | None:
    """In a --multirun, the sweep dir when it holds ``run_dir``: its jobs' plots share one
    plotly.min.js there (where ``python -m search.report`` writes its plot too)."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return None
    root = Path(hydra_cfg.sweep.dir).resolve()
    return root if run_dir.resolve().is_relative_to(root) else None


def cli() -> None:
    """The console script (``vitnas-...``): the same as ``python -m``."""
    hydra_main(main)


if __name__ == "__main__":
    cli()
