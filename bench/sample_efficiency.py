"""Sample efficiency on Fashion-MNIST: hypervolume of the accuracy-FLOPs front vs trial count.

``python -m search`` with the two objectives [val_acc, flops] (no budget) on the supernet that
``bench/common.py`` picks (``best_supernet``: the more accurate on validation), for the samplers
nsga2, tpe and random, 3 seeds each, ``--trials`` trials (2N). Each trial's accuracy is the
inherited-weight accuracy on a fixed 1,000-image sample of the validation split
(``search.val_size=1000``). NSGA-II runs with a population of 10 (the default 50 would leave it in
its random first generation for the whole run); everything else is the product default (TPE: 10
random startup trials, multivariate). Every study starts with the smallest and the largest subnet
(``search.seed_trials``, the default), whatever the sampler.

The hypervolume of the first n trials' front is exact (2-D sweep), in the plane (FLOPs / FLOPs of
the largest subnet, accuracy), with the reference point (1.0, 0.10): the largest subnet's FLOPs
and chance accuracy for 10 classes. Target: NSGA-II's and TPE's hypervolume at N trials ≥
random's at 2N.

    python bench/sample_efficiency.py              # ~8 min on 2 cores after the supernet
    python bench/sample_efficiency.py --trials 100 --seeds 0 1 2

Writes results/benchmarks/sample_efficiency.csv (hypervolume per sampler, seed and trial count),
sample_efficiency_summary.csv and sample_efficiency.png.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import common
import numpy as np
import optuna._hypervolume
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search import read_trials
from supernet import SearchSpace, complexity
from supernet.checkpoint import load_checkpoint

NAME = "sample_efficiency"
WORK = common.CACHE / "sample_efficiency"
SAMPLERS = ("nsga2", "tpe", "random")
REF_ACC = 0.10  # chance accuracy, 10 classes


def hypervolume(cost: Sequence[float], acc: Sequence[float], ref_acc: float = REF_ACC) -> float:
    """Exact 2-D hypervolume dominated by the points (cost to minimise, in [0, 1]; accuracy to
    maximise) with reference point (1, ``ref_acc``); points beyond it add nothing."""
    points = sorted((c, a) for c, a in zip(cost, acc, strict=True) if c <= 1.0 and a > ref_acc)
    if not points:
        return 0.0
    edges = [c for c, _ in points[1:]] + [1.0]
    best, volume = ref_acc, 0.0
    for (c, a), right in zip(points, edges, strict=True):
        best = max(best, a)
        volume += (right - c) * (best - ref_acc)
    return volume


def finished(run_dir: Path, trials: int) -> bool:
    """Whether ``run_dir`` holds a search of ``trials`` trials already (a rerun of the search
    command would add trials to its study)."""
    return (run_dir / "trials.csv").is_file() and len(read_trials(run_dir)) >= trials


def search_command(checkpoint: Path, sampler: str, seed: int, trials: int) -> list[str]:
    return common.command(
        "search",
        f"supernet={common.rel(checkpoint)}",
        "search.objectives=[val_acc,flops]",
        f"search.sampler={sampler}",
        f"search.n_trials={trials}",
        "search.val_size=1000",
        "search.nsga2.population_size=10",
        "search.progress=false",
        f"seed={seed}",
        f"hydra.run.dir={common.rel(WORK / sampler / f'seed{seed}')}",
    )


def curve(run_dir: Path, max_flops: float, trials: int) -> pd.DataFrame:
    """Hypervolume of the first n trials, n = 1 .. trials."""
    frame = read_trials(run_dir).sort_values("number")
    frame = frame[frame["number"] < trials]
    ok = frame["state"].eq("COMPLETE") & frame["val_acc"].notna()
    cost = (frame["flops"].astype(float) / max_flops).where(ok)
    acc = frame["val_acc"].where(ok)
    rows = []
    for n in range(1, trials + 1):
        first = frame["number"] < n
        c, a = cost[first & ok].tolist(), acc[first & ok].tolist()
        rows.append(
            {"trials": n, "hypervolume": hypervolume(c, a), "evaluated": int((first & ok).sum())}
        )
    inside = ok & (acc > REF_ACC)
    check = np.array([[ci, -ai] for ci, ai in zip(cost[inside], acc[inside], strict=True)])
    expected = optuna._hypervolume.compute_hypervolume(check, np.array([1.0, -REF_ACC]))
    if not np.isclose(rows[-1]["hypervolume"], expected, rtol=0, atol=1e-12):
        raise SystemExit(f"hypervolume {rows[-1]['hypervolume']} differs from Optuna's {expected}")
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="2N: trials per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--out", type=Path, default=common.OUT)
    args = parser.parse_args()

    start = time.perf_counter()
    checkpoints = common.ensure_supernets()
    name = common.best_supernet()
    checkpoint = checkpoints[name]
    print(f"searching the {name} supernet (the more accurate on validation)")
    space = SearchSpace.from_dict(load_checkpoint(checkpoint)["space"])
    max_flops = float(complexity.flops(space, space.largest()))
    runs = [(s, seed) for s in args.samplers for seed in args.seeds]
    todo = [
        search_command(checkpoint, s, seed, args.trials)
        for s, seed in runs
        if not finished(WORK / s / f"seed{seed}", args.trials)
    ]
    common.run_parallel(todo)
    table = pd.concat(
        [
            curve(WORK / s / f"seed{seed}", max_flops, args.trials).assign(sampler=s, seed=seed)
            for s, seed in runs
        ],
        ignore_index=True,
    )[["sampler", "seed", "trials", "evaluated", "hypervolume"]]

    half = args.trials // 2
    marks = sorted({half // 2, half, args.trials})
    at = table[table["trials"].isin(marks)]
    summary = (
        at.groupby(["sampler", "trials"])["hypervolume"].agg(["mean", "std"]).unstack("trials")
    )
    summary.columns = [f"hv{n}_{stat}" for stat, n in summary.columns]
    evaluated = table[table["trials"] == args.trials].groupby("sampler")["evaluated"].mean()
    summary["evaluated_at_2N"] = evaluated
    summary = summary.reindex(args.samplers).reset_index()
    wall = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "sample_efficiency.csv", index=False)
    summary.to_csv(args.out / "sample_efficiency_summary.csv", index=False)
    common.save_png(figure(table), args.out / "sample_efficiency.png")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "random" in args.samplers:
        print(f"\nhypervolume at N trials vs random at 2N (target ≥), mean over {len(args.seeds)}")
        for n in (half // 2, half):
            rand = at[(at["sampler"] == "random") & (at["trials"] == 2 * n)]["hypervolume"].mean()
            for sampler in [s for s in args.samplers if s != "random"]:
                mine = at[(at["sampler"] == sampler) & (at["trials"] == n)]["hypervolume"].mean()
                verdict = "met" if mine >= rand else "missed"
                print(f"  {sampler}@{n} {mine:.4f} vs random@{2 * n} {rand:.4f}: {verdict}")
    common.record_time(NAME, wall, out=args.out)
    print(f"wrote sample_efficiency.csv, _summary.csv, .png to {args.out} ({wall:.0f} s)")


def figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (sampler, group) in enumerate(table.groupby("sampler", sort=False)):
        stats = group.groupby("trials")["hypervolume"].agg(["mean", "std"]).fillna(0.0)
        color = qualitative.Plotly[i]
        x = stats.index.tolist()
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=(stats["mean"] + stats["std"]).tolist()
                + (stats["mean"] - stats["std"]).tolist()[::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(x=x, y=stats["mean"], mode="lines", name=sampler, line={"color": color})
        )
    fig.update_layout(
        title="Hypervolume of the accuracy-FLOPs front vs trials (mean ± std, 3 seeds)",
        xaxis_title="trials",
        yaxis_title="hypervolume (ref: largest subnet's FLOPs, 10% accuracy)",
        template="plotly_white",
        width=900,
        height=550,
    )
    return fig


if __name__ == "__main__":
    main()
