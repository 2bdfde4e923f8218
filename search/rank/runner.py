"""A whole ranking run: pick subnets → train them alone and fine-tune them → τ, table, plot.

``python -m search.rank`` is a thin Hydra wrapper around :func:`run_ranking`; benchmarks and tests
call it with a config mapping and a run directory.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig

from supernet import Space, Subnet, complexity
from supernet.checkpoint import file_sha256, load_supernet
from supernet.common.atomic import atomic_write, atomic_write_text, remove_stale_temps
from supernet.common.config import differences
from supernet.common.console import Progress
from supernet.common.errors import CheckpointError
from supernet.common.rundir import RUN_KINDS, claim_run_dir, run_kind_of

from ..costs import resolve_latency_profile
from ..latency import LatencyProfile
from ..plots import save_figure
from .band import Band, pick_in_band
from .jobs import SubnetJob, run_jobs, training_cost
from .pick import pick_subnets, slug
from .proxies import PROXIES, Batches, ProxyScores, proxy_batches, score_proxies
from .settings import RankError, RankSettings, recipe
from .table import (
    noise_verdict,
    proxy_comparison,
    proxy_verdict,
    rank_figure,
    rank_stats,
    rank_table,
    ranker_stats,
    rankers_text,
    table_text,
    verdict,
)

__all__ = ["MANIFEST", "RankResult", "run_ranking", "supernet_training_s"]

log = logging.getLogger(__name__)

#: The run's settings, statistics and verdict (beside rank.csv).
MANIFEST = "rank.yaml"


@dataclass
class RankResult:
    run_dir: Path
    table: pd.DataFrame
    stats: dict[str, Any]
    verdict: str
    wall_s: float
    files: list[Path] = field(default_factory=list)
    rankers: pd.DataFrame = field(default_factory=pd.DataFrame)  # the supernet and each proxy
    lines: list[str] = field(default_factory=list)  # the verdict, the noise and proxy verdicts


def supernet_training_s(payload: Mapping[str, Any]) -> float:
    """The supernet's training time from its checkpoint's metrics (NaN when not recorded)."""
    metrics = payload.get("metrics")
    try:
        return float(metrics[-1]["wall_s"])  # type: ignore[index]
    except (TypeError, KeyError, IndexError, ValueError):
        return math.nan


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


#: What a ranking writes into its run directory, beside ``subnets/`` and the training runs.
OUTPUTS = ("rank.csv", MANIFEST, "rank.html", "rank.png")


def _clear_previous_outputs(run_dir: Path, subnet_files: set[str]) -> None:
    """Before a ranking's outputs are written: the temporary files a killed write of them left,
    the previous run's PNG (this run's may not be drawn: png=false, or a kill while Chromium
    renders it; it must not stand beside tables it does not show), and the subnet YAMLs of
    subnets this run did not pick (the new table does not name them)."""
    for name in OUTPUTS:
        remove_stale_temps(run_dir / name)
    (run_dir / "rank.png").unlink(missing_ok=True)
    for path in (run_dir / "subnets").glob("*.yaml"):
        if path.name not in subnet_files:
            path.unlink(missing_ok=True)


def _replacing_note(run_dir: Path, now: Mapping[str, Any]) -> str | None:
    """A note when ``run_dir`` holds a finished ranking of the same supernet with other settings,
    which this one replaces (its finished training runs are reused where they match)."""
    path = run_dir / MANIFEST
    try:
        old = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(old, Mapping):
        return None
    changed = [
        f"{key} {before!r} -> {after!r}"
        for name, value in now.items()
        if name in old
        for key, before, after in differences(name, old.get(name), value)  # recipe.epochs
    ]
    if not changed:
        return None
    return (
        f"note: {run_dir} holds a ranking with other settings ({', '.join(changed)}); this one "
        "replaces its tables (training runs that match are reused)"
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
        for seed in settings.scratch_seeds:
            config = {
                **base,
                "mode": "scratch",
                "seed": seed,
                "run_dir": str(scratch_dir / f"seed{seed}" / slug(s)),
            }
            jobs.append(SubnetJob("scratch", s, config, cost=cost, extra={"seed": seed}))
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


def _costs(
    settings: RankSettings, space: Space, band: Band
) -> tuple[Callable[[Subnet], dict[str, float]], LatencyProfile | None]:
    """The band's costs of a subnet (latency from the calibrated profile, only when asked), and
    that profile."""
    profile = None
    if "latency_ms" in band.metrics:
        profile = resolve_latency_profile(
            settings.latency_profile,
            space,
            needed_by=["band.latency_ms"],
            device=settings.latency_device,
            batch_size=settings.latency_batch_size,
            threads=settings.latency_threads,
        )
        assert profile is not None  # (needed: a missing one raises)
    exact = {"params": complexity.params, "macs": complexity.macs, "flops": complexity.flops}

    def costs(subnet: Subnet) -> dict[str, float]:
        out = {}
        for metric in band.metrics:
            if metric == "latency_ms":
                assert profile is not None
                out[metric] = profile.predict_ms(space, subnet)
            else:
                out[metric] = float(exact[metric](space, subnet))
        return out

    return costs, profile


def _proxies(
    settings: RankSettings, space: Space, subnets: list[Subnet], data: Mapping[str, Any]
) -> ProxyScores:
    """Every proxy's score and cost on every subnet (images only for the zero-cost ones)."""
    started = time.perf_counter()
    batches: Batches = []
    if any(PROXIES[name].kind == "zero-cost" for name in settings.proxies):
        batches = proxy_batches(
            data, space, settings.proxy_batches, settings.proxy_batch_size, settings.seed
        )
    data_s = time.perf_counter() - started
    scores = score_proxies(
        space, subnets, settings.proxies, batches, settings.seed, threads=settings.threads
    )
    scores.data_s = data_s
    scores.images = sum(len(labels) for _, labels in batches)
    return scores


def _plain(value: Any) -> Any:
    """NaN → None and numpy scalars → Python numbers, for YAML."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def run_ranking(
    cfg: DictConfig | Mapping[str, Any] | RankSettings, run_dir: str | Path
) -> RankResult:
    """Rank ``k`` subnets of a supernet by inherited and by stand-alone accuracy (see
    :mod:`search.rank`), and by every proxy; writes ``rank.csv``, ``rank.yaml`` and
    ``rank.html`` into ``run_dir``."""
    settings = cfg if isinstance(cfg, RankSettings) else RankSettings.from_config(cfg)
    run_dir = Path(run_dir)
    claim_run_dir(run_dir, "rank")
    if settings.scratch_dir is not None and (found := run_kind_of(settings.scratch_dir)):
        raise RankError(
            f"scratch_dir={settings.scratch_dir} holds {RUN_KINDS[found[0]].what} ({found[1]}), "
            "whose directory its stand-alone runs would fill; give them a directory of their own, "
            f"e.g. scratch_dir={run_dir / 'scratch'}"
        )
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
    band = settings.band or Band()
    profile = None
    if band:
        costs, profile = _costs(settings, space, band)
        subnets = pick_in_band(space, settings.k, band, costs, settings.seed, settings.pool_size)
    else:
        subnets = pick_subnets(space, settings.k, settings.seed, settings.pool_size)
    run_dir.mkdir(parents=True, exist_ok=True)
    proxies = _proxies(settings, space, subnets, data)
    common = {
        "space": space.to_dict(),
        "data": dict(data),
        "train": train.to_dict(),
        "seed": settings.seed,
        "device": settings.device,
        "threads": settings.threads,
    }
    jobs = _jobs(settings, run_dir, space, subnets, common, checkpoint)
    seeds = settings.scratch_seeds
    replacing = _replacing_note(
        run_dir,
        {
            "k": settings.k,
            "seed": settings.seed,
            "seeds": list(seeds),
            "band": band.to_config(),
            "recipe": train.to_dict(),
            "finetune": settings.finetune,
        },
    )
    print(
        f"ranking {len(subnets)} subnets of {checkpoint} (space {space.name or 'custom'}, "
        f"data {data.get('name')}"
        + (f"; {band.describe()}" if band else "")
        + f"): {'scratch + fine-tune' if settings.finetune else 'scratch'}, "
        f"{train.epochs} epoch(s) each, {len(seeds)} stand-alone seed(s), "
        f"{settings.n_jobs} process(es)",
        file=sys.stderr,
    )
    if replacing:
        print(replacing, file=sys.stderr)
    bar = Progress(settings.progress, total=len(jobs), desc="rank", unit="run", logger=log)

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
    latency = profile.predict_many(space, subnets).tolist() if profile is not None else None
    table = rank_table(space, subnets, results, proxies, latency)
    stats: dict[str, Any] = dict(rank_stats(table))
    rankers = ranker_stats(table, settings.proxies, supernet_training_s(payload))
    stats.update(proxy_comparison(table, rankers))
    lines = [verdict(stats), noise_verdict(stats), proxy_verdict(stats)]
    wall = time.perf_counter() - started

    _clear_previous_outputs(run_dir, {f"{slug(s)}.yaml" for s in subnets})
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
        "seeds": list(seeds),
        "band": band.to_config(),
        **(
            {
                "latency_target": profile.record()  # (the file, even when a directory was given)
            }
            if profile is not None
            else {}
        ),
        "finetune": settings.finetune,
        "scratch_dir": str((settings.scratch_dir or run_dir / "scratch").resolve()),
        "stats": _plain(stats),
        "rankers": _plain(rankers.to_dict("records")),
        "proxies": {
            "names": list(settings.proxies),
            "weights": "the standalone model at initialisation (seed = the run's seed)",
            # validation images loaded for the zero-cost proxies (each takes what its method needs:
            # synflow none, DSS and NASWOT their first batch)
            "images_loaded": proxies.images,
            "batches": f"{settings.proxy_batches} x {settings.proxy_batch_size} asked",
            "data_s": round(proxies.data_s, 2),
        },
        "verdict": lines[0],
        "noise_verdict": lines[1],
        "proxy_verdict": lines[2],
        "wall_s": round(wall, 1),
    }
    files.append(run_dir / MANIFEST)
    atomic_write_text(files[-1], yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True))
    figure = rank_figure(table, stats, rankers)
    files += save_figure(figure, run_dir / "rank.html", png=settings.png)
    print(table_text(table))
    print()
    print(rankers_text(rankers))
    print(
        f"\nKendall τ {stats['kendall_tau']:.3f} (p {stats['kendall_p']:.2g}), Spearman ρ "
        f"{stats['spearman_rho']:.3f}: inherited validation vs stand-alone test accuracy"
        f"{' (mean of ' + str(len(seeds)) + ' seeds)' if len(seeds) > 1 else ''}; "
        f"τ with inherited test accuracy {stats['kendall_tau_inherited_test']:.3f}"
    )
    print("\n".join(lines))
    print(f"wrote {', '.join(str(f) for f in files)} ({wall:.0f} s)")
    return RankResult(run_dir, table, stats, lines[0], wall, files, rankers, lines)
