"""A whole ranking run: pick subnets → train them alone and fine-tune them → τ, table, plot.

``python -m search.rank`` is a thin Hydra wrapper around :func:`run_ranking`; benchmarks and tests
call it with a config mapping and a run directory.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig
from tqdm.auto import tqdm

from supernet import Space, Subnet
from supernet.checkpoint import file_sha256, load_supernet
from supernet.common.atomic import atomic_write, atomic_write_text
from supernet.common.errors import CheckpointError

from ..plots import save_figure
from .jobs import SubnetJob, run_jobs, training_cost
from .pick import pick_subnets, slug
from .settings import RankError, RankSettings, recipe
from .table import rank_figure, rank_stats, rank_table, table_text, verdict

__all__ = ["MANIFEST", "RankResult", "run_ranking"]

log = logging.getLogger(__name__)

#: The run's settings, statistics and verdict (beside rank.csv).
MANIFEST = "rank.yaml"


@dataclass
class RankResult:
    run_dir: Path
    table: pd.DataFrame
    stats: dict[str, float]
    verdict: str
    wall_s: float
    files: list[Path] = field(default_factory=list)


def _checkpoint(path: Path) -> Path:
    return path / "supernet.pt" if path.is_dir() else path


def _check_run_dir(run_dir: Path, sha: str) -> None:
    """Refuse a run directory that holds the ranking of another supernet (its fine-tune runs
    would be reused for this one)."""
    manifest = run_dir / MANIFEST
    if manifest.is_file():
        old = yaml.safe_load(manifest.read_text()) or {}
        if old.get("checkpoint_sha256") not in (None, sha):
            raise RankError(
                f"{run_dir} holds the ranking of another supernet ({old.get('checkpoint')}); "
                "choose another hydra.run.dir"
            )


def _jobs(
    settings: RankSettings,
    run_dir: Path,
    space: Space,
    subnets: list[Subnet],
    common: Mapping[str, Any],
    checkpoint: Path,
) -> list[SubnetJob]:
    scratch_dir = settings.scratch_dir or run_dir / "scratch"
    epochs = int(common["train"]["epochs"])
    jobs = []
    for s in subnets:
        path = run_dir / "subnets" / f"{slug(s)}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        s.to_yaml(path)
        base = {**common, "subnet": str(path), "resume": "auto"}
        cost = training_cost(space, s, epochs)
        jobs.append(
            SubnetJob(
                "scratch",
                s,
                {**base, "mode": "scratch", "run_dir": str(scratch_dir / slug(s))},
                cost=cost,
            )
        )
        if settings.finetune:
            config = {
                **base,
                "mode": "finetune",
                "supernet": str(checkpoint),
                "run_dir": str(run_dir / "finetune" / slug(s)),
            }
            jobs.append(SubnetJob("finetune", s, config, cost=cost))
        else:
            config = {
                "supernet": str(checkpoint),
                "data": common["data"],
                "eval_batch_size": common["train"]["eval_batch_size"],
                "device": settings.device,
                "threads": settings.threads,
            }
            jobs.append(SubnetJob("inherit", s, config, cost=training_cost(space, s, 0) / 10))
    return jobs


def run_ranking(
    cfg: DictConfig | Mapping[str, Any] | RankSettings, run_dir: str | Path
) -> RankResult:
    """Rank ``k`` subnets of a supernet by inherited and by stand-alone accuracy (see
    :mod:`search.rank`); writes ``rank.csv``, ``rank.yaml`` and ``rank.html`` into ``run_dir``."""
    settings = cfg if isinstance(cfg, RankSettings) else RankSettings.from_config(cfg)
    run_dir = Path(run_dir)
    started = time.perf_counter()
    checkpoint = _checkpoint(settings.supernet)
    net, payload = load_supernet(checkpoint)
    space = net.space
    del net
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise CheckpointError(
            f"{checkpoint} records no data config, so the subnets cannot be trained on the data "
            "the supernet saw; use a checkpoint written by `python -m supernet.train`"
        )
    train = recipe(payload.get("train") or {}, settings.train)
    sha = file_sha256(checkpoint)
    _check_run_dir(run_dir, sha)
    subnets = pick_subnets(space, settings.k, settings.seed, settings.pool_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "space": space.to_dict(),
        "data": dict(data),
        "train": train.to_dict(),
        "seed": settings.seed,
        "device": settings.device,
        "threads": settings.threads,
    }
    jobs = _jobs(settings, run_dir, space, subnets, common, checkpoint)
    print(
        f"ranking {len(subnets)} subnets of {checkpoint} ({space.name or 'custom space'}, "
        f"{data.get('name')}): {'scratch + fine-tune' if settings.finetune else 'scratch'}, "
        f"{train.epochs} epoch(s) each, {settings.n_jobs} process(es)",
        file=sys.stderr,
    )
    bar = tqdm(total=len(jobs), desc="rank", unit="run", file=sys.stderr)

    def done(result: Mapping[str, Any]) -> None:
        bar.update(1)
        log.info(
            "%s %s: val %.4f, test %.4f (%.0f s)",
            result["kind"],
            result["subnet"],
            result["val_acc"],
            result["test_acc"],
            result["wall_s"],
        )

    try:
        results = run_jobs(jobs, settings.n_jobs, done)
    finally:
        bar.close()
    table = rank_table(space, subnets, results)
    stats = rank_stats(table)
    line = verdict(stats)
    wall = time.perf_counter() - started

    files = [run_dir / "rank.csv"]
    atomic_write(files[0], lambda tmp: table.to_csv(tmp, index=False))
    manifest = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": sha,
        "space": space.to_dict(),
        "data": dict(data),
        "recipe": train.to_dict(),
        "k": settings.k,
        "seed": settings.seed,
        "finetune": settings.finetune,
        "scratch_dir": str((settings.scratch_dir or run_dir / "scratch").resolve()),
        "stats": {k: (None if v != v else v) for k, v in stats.items()},
        "verdict": line,
        "wall_s": round(wall, 1),
    }
    files.append(run_dir / MANIFEST)
    atomic_write_text(files[-1], yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    files += save_figure(rank_figure(table, stats), run_dir / "rank.html", png=settings.png)
    print(table_text(table))
    print(
        f"\nKendall τ {stats['kendall_tau']:.3f} (p {stats['kendall_p']:.2g}), Spearman ρ "
        f"{stats['spearman_rho']:.3f}: inherited validation vs stand-alone test accuracy; "
        f"τ with inherited test accuracy {stats['kendall_tau_inherited_test']:.3f}"
    )
    print(line)
    print(f"wrote {', '.join(str(f) for f in files)} ({wall:.0f} s)")
    return RankResult(run_dir, table, stats, line, wall, files)
