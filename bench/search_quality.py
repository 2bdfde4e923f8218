"""Search quality on Fashion-MNIST: the searched subnet vs a hand-designed ViT and two cheap picks.

Under each FLOP budget, ``python -m search`` (TPE, the default single-objective sampler) searches
the supernet ``bench/common.py`` picks
(``best_supernet``: the more accurate on validation) and ``python -m search.export`` takes its most
accurate feasible subnet. The baseline is hand-designed the DeiT way: every layer has the same
heads, width = heads × head_dim (24) and MLP ratio 4; of those with a depth of the space (4-6), the
one with the most FLOPs within the budget. By default the budgets *are* the FLOPs of two such
models (D72-L4, 3 heads: 8.9 MFLOPs; D96-L4, 4 heads: 15.6 MFLOPs), so the baseline sits exactly
at the budget and the searched subnet at or below it. Both are then trained alone from scratch
with the same recipe as the ranking benchmark, for 3 seeds (seed s searches with seed s and trains
with seed s); test accuracy mean ± std. Target: searched ≥ baseline + 1.0 pt at equal FLOPs.

Two more baselines give the search's margin a meaning: what costs nothing but a cost model or a
forward pass. Both draw as many random subnets as the search made trials (seed s: the draws of
``random.Random(s)``) and keep those within the budget; ``largest_flops`` takes the one with the
most FLOPs ("bigger is better"), ``proxy`` the one the best proxy of the ranking benchmark
(``results/benchmarks/ranking_summary.csv``: the highest mean Kendall τ over its two bands, FLOPs
excluded as it is the other baseline; ``--proxy`` names one instead) scores highest, computed as
``python -m search.rank`` does (at initialisation with seed s, on the supernet's validation
images). Both are trained alone with the same recipe and seeds as the searched subnet.

    python bench/search_quality.py                 # ~35 min on 2 cores after the supernets
    python bench/search_quality.py --budgets 30e6 50e6 --seeds 0 1 2 --trials 50

Writes results/benchmarks/search_quality.csv (one row per budget and seed),
search_quality_summary.csv (one row per budget) and search_quality.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from pathlib import Path
from typing import Any

import common
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search import read_trials
from search.rank import PROXIES, SubnetJob, proxy_batches, recipe, run_jobs, score_proxies, slug
from supernet import SearchSpace, SubnetConfig, complexity
from supernet.checkpoint import load_checkpoint

NAME = "search_quality"
WORK = common.CACHE / "search_quality"


def deit_style(space: SearchSpace, budget: float) -> tuple[SearchSpace, SubnetConfig]:
    """The DeiT-style ViT (uniform heads, width = heads × head_dim, MLP ratio 4, a depth of the
    space) with the most FLOPs within ``budget``, and a one-subnet space that holds it."""
    best: tuple[float, SearchSpace, SubnetConfig] | None = None
    for heads in range(1, 4 * max(space.num_heads) + 1):
        for depth in space.depth:
            width = heads * space.head_dim
            own = dataclasses.replace(
                space,
                embed_dim=(width,),
                depth=(depth,),
                num_heads=(heads,),
                mlp_ratio=(4.0,),
                name="deit_style",
            )
            subnet = own.largest()
            flops = complexity.flops(own, subnet)
            if flops <= budget and (best is None or flops > best[0]):
                best = (flops, own, subnet)
    if best is None:
        raise SystemExit(f"no DeiT-style model within {budget:.3g} FLOPs")
    return best[1], best[2]


def default_budgets(space: SearchSpace) -> list[float]:
    """The FLOPs of the DeiT-style D72-L4 (3 heads) and D96-L4 (4 heads) models."""
    budgets = []
    for heads in (3, 4):
        width = heads * space.head_dim
        own = dataclasses.replace(
            space, embed_dim=(width,), depth=(4,), num_heads=(heads,), mlp_ratio=(4.0,)
        )
        budgets.append(float(complexity.flops(own, own.largest())))
    return budgets


def search(checkpoint: Path, budget: float, seed: int, trials: int) -> tuple[Path, pd.Series]:
    """Search (or reuse a finished search), export its best subnet; (export dir, best row)."""
    run_dir = WORK / f"budget{budget / 1e6:.1f}M" / f"seed{seed}"
    out = common.search_and_export(checkpoint, run_dir, trials, seed, f"budget.flops={int(budget)}")
    frame = read_trials(run_dir)
    ok = frame[frame["feasible"].fillna(False) & frame["val_acc"].notna()]
    best = ok.sort_values(["val_acc", "flops", "number"], ascending=[False, True, True]).iloc[0]
    return out, best


def best_proxy(path: Path = common.OUT / "ranking_summary.csv") -> str:
    """The proxy with the highest mean Kendall τ over the ranking benchmark's bands, FLOPs
    excluded (the largest-FLOPs baseline is FLOPs' pick)."""
    summary = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if "ranker" not in summary:
        raise SystemExit(f"no proxy ranking in {path}: run bench/ranking.py first, or pass --proxy")
    proxies = summary[summary["ranker"].isin([p for p in PROXIES if p != "flops"])]
    return str(proxies.groupby("ranker")["kendall_tau"].mean().idxmax())


def cheap_picks(
    space: SearchSpace,
    budget: float,
    seed: int,
    trials: int,
    proxy: str,
    batches: list[Any],
) -> tuple[SubnetConfig, SubnetConfig, float]:
    """From ``trials`` random draws within ``budget``: the largest-FLOPs subnet, the subnet
    ``proxy`` scores highest, and the seconds the proxy took."""
    rng = random.Random(seed)
    draws = [space.sample(rng) for _ in range(trials)]
    within = list(dict.fromkeys(s for s in draws if complexity.flops(space, s) <= budget))
    if not within:
        raise SystemExit(f"none of {trials} random draws is within {budget:.3g} FLOPs")
    largest = max(within, key=lambda s: (complexity.flops(space, s), str(s)))
    scores = score_proxies(space, within, [proxy], batches, seed, threads=common.THREADS)
    best = max(range(len(within)), key=lambda i: (scores.scores[proxy][i], str(within[i])))
    return largest, within[best], float(sum(scores.seconds[proxy]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", help="FLOPs (default: see above)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=50, help="search trials per budget and seed")
    parser.add_argument("--epochs", type=int, default=common.STANDALONE_EPOCHS)
    parser.add_argument(
        "--proxy",
        choices=list(PROXIES),
        help="the proxy whose pick is a baseline (default: the ranking benchmark's best)",
    )
    parser.add_argument("--out", type=Path, default=common.OUT)
    args = parser.parse_args()

    start = time.perf_counter()
    checkpoints = common.ensure_supernets()
    name = common.best_supernet()
    checkpoint = checkpoints[name]
    print(f"searching the {name} supernet (the more accurate on validation)")
    payload = load_checkpoint(checkpoint)
    space = SearchSpace.from_dict(payload["space"])
    train = recipe(payload["train"], {"epochs": args.epochs}).to_dict()
    budgets = args.budgets or default_budgets(space)
    proxy = args.proxy or best_proxy()
    print(f"proxy baseline: {proxy} ({PROXIES[proxy].source})")

    searches = {(b, s): search(checkpoint, b, s, args.trials) for b in budgets for s in args.seeds}
    jobs: list[SubnetJob] = []
    picks: dict[tuple[float, int], dict[str, Any]] = {}
    for budget in budgets:
        base_space, base = deit_style(space, budget)
        base_yaml = WORK / f"baseline_{slug(base)}.yaml"
        base_yaml.parent.mkdir(parents=True, exist_ok=True)
        base.to_yaml(base_yaml)
        for seed in args.seeds:
            export, best = searches[(budget, seed)]
            found = SubnetConfig.from_yaml(export / "subnet.yaml")
            common_cfg: dict[str, Any] = {
                "mode": "scratch",
                "data": payload["data"],
                "train": train,
                "seed": seed,
                "threads": common.THREADS,
                "device": "cpu",
                "resume": "auto",
            }
            extra = {"budget": budget, "seed": seed}
            jobs.append(
                SubnetJob(
                    "scratch",
                    found,
                    {
                        **common_cfg,
                        "space": space.to_dict(),
                        "subnet": str(export),
                        "run_dir": str(export.parent / "scratch"),
                    },
                    label="searched",
                    cost=complexity.flops(space, found),
                    extra={**extra, "inherited_val_acc": float(best["val_acc"])},
                )
            )
            jobs.append(
                SubnetJob(
                    "scratch",
                    base,
                    {
                        **common_cfg,
                        "space": base_space.to_dict(),
                        "subnet": str(base_yaml),
                        "run_dir": str(WORK / f"baseline_{slug(base)}" / f"seed{seed}"),
                    },
                    label="baseline",
                    cost=complexity.flops(base_space, base),
                    extra=extra,
                )
            )
            batches = proxy_batches(payload["data"], space, 3, 128, seed)
            largest, picked, proxy_s = cheap_picks(space, budget, seed, args.trials, proxy, batches)
            picks[(budget, seed)] = {"proxy_s": proxy_s}
            for label, subnet in (("largest_flops", largest), ("proxy", picked)):
                path = WORK / "picks" / f"{slug(subnet)}.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                subnet.to_yaml(path)
                # one run per subnet and seed: a subnet both baselines pick is trained once
                run_dir = WORK / "picks" / f"seed{seed}" / slug(subnet)
                picks[(budget, seed)][label] = str(run_dir)
                if any(job.config["run_dir"] == str(run_dir) for job in jobs):
                    continue
                jobs.append(
                    SubnetJob(
                        "scratch",
                        subnet,
                        {
                            **common_cfg,
                            "space": space.to_dict(),
                            "subnet": str(path),
                            "run_dir": str(run_dir),
                        },
                        label="pick",
                        cost=complexity.flops(space, subnet),
                        extra={"budget": budget, "seed": seed, "run": str(run_dir)},
                    )
                )
    print(f"training {len(jobs)} subnets from scratch ({args.epochs} epochs each)", flush=True)
    results = run_jobs(
        jobs,
        common.JOBS,
        lambda r: print(f"  {r['label']} {r['subnet']}: test {r['test_acc']:.4f}", flush=True),
    )

    rows = []
    for budget in budgets:
        for seed in args.seeds:
            pair = {r["label"]: r for r in results if r["budget"] == budget and r["seed"] == seed}
            searched, baseline = pair["searched"], pair["baseline"]
            base_space, _ = deit_style(space, budget)
            runs = {r["run"]: r for r in results if r["label"] == "pick"}
            largest = runs[picks[(budget, seed)]["largest_flops"]]
            picked = runs[picks[(budget, seed)]["proxy"]]
            rows.append(
                {
                    "budget_mflops": budget / 1e6,
                    "seed": seed,
                    "searched": str(searched["subnet"]),
                    "searched_mflops": complexity.flops(space, searched["subnet"]) / 1e6,
                    "searched_params_m": complexity.params(space, searched["subnet"]) / 1e6,
                    "searched_inherited_val_acc": searched["inherited_val_acc"],
                    "searched_test_acc": searched["test_acc"],
                    "baseline": str(baseline["subnet"]),
                    "baseline_mflops": complexity.flops(base_space, baseline["subnet"]) / 1e6,
                    "baseline_params_m": complexity.params(base_space, baseline["subnet"]) / 1e6,
                    "baseline_test_acc": baseline["test_acc"],
                    "diff_pt": (searched["test_acc"] - baseline["test_acc"]) * 100,
                    "largest_flops": str(largest["subnet"]),
                    "largest_flops_mflops": complexity.flops(space, largest["subnet"]) / 1e6,
                    "largest_flops_test_acc": largest["test_acc"],
                    "diff_largest_flops_pt": (searched["test_acc"] - largest["test_acc"]) * 100,
                    "proxy": proxy,
                    "proxy_pick": str(picked["subnet"]),
                    "proxy_pick_mflops": complexity.flops(space, picked["subnet"]) / 1e6,
                    "proxy_pick_test_acc": picked["test_acc"],
                    "proxy_s": picks[(budget, seed)]["proxy_s"],
                    "diff_proxy_pt": (searched["test_acc"] - picked["test_acc"]) * 100,
                }
            )
    table = pd.DataFrame(rows)
    summary = (
        table.groupby("budget_mflops")
        .agg(
            seeds=("seed", "count"),
            baseline=("baseline", "first"),
            baseline_mflops=("baseline_mflops", "first"),
            searched_mflops_mean=("searched_mflops", "mean"),
            searched_test_mean=("searched_test_acc", "mean"),
            searched_test_std=("searched_test_acc", "std"),
            baseline_test_mean=("baseline_test_acc", "mean"),
            baseline_test_std=("baseline_test_acc", "std"),
            diff_pt_mean=("diff_pt", "mean"),
            diff_pt_std=("diff_pt", "std"),
            distinct_searched=("searched", "nunique"),
            largest_flops_mflops_mean=("largest_flops_mflops", "mean"),
            largest_flops_test_mean=("largest_flops_test_acc", "mean"),
            largest_flops_test_std=("largest_flops_test_acc", "std"),
            diff_largest_flops_pt_mean=("diff_largest_flops_pt", "mean"),
            diff_largest_flops_pt_std=("diff_largest_flops_pt", "std"),
            proxy=("proxy", "first"),
            proxy_pick_mflops_mean=("proxy_pick_mflops", "mean"),
            proxy_pick_test_mean=("proxy_pick_test_acc", "mean"),
            proxy_pick_test_std=("proxy_pick_test_acc", "std"),
            diff_proxy_pt_mean=("diff_proxy_pt", "mean"),
            diff_proxy_pt_std=("diff_proxy_pt", "std"),
            proxy_s_mean=("proxy_s", "mean"),
        )
        .reset_index()
    )
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "search_quality.csv", index=False)
    summary.to_csv(args.out / "search_quality_summary.csv", index=False)
    common.save_png(figure(table), args.out / "search_quality.png")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\nmean ± std over seeds, test accuracy % (target: searched ≥ baseline + 1.0 pt)")
    for row in summary.itertuples(index=False):
        print(
            f"  budget {row.budget_mflops:.1f} MFLOPs: searched {100 * row.searched_test_mean:.2f} "
            f"± {100 * row.searched_test_std:.2f} ({row.searched_mflops_mean:.1f} MFLOPs on "
            f"average), baseline {row.baseline} {100 * row.baseline_test_mean:.2f} ± "
            f"{100 * row.baseline_test_std:.2f}: {row.diff_pt_mean:+.2f} ± {row.diff_pt_std:.2f} pt"
        )
        print(
            f"    largest-FLOPs draw {100 * row.largest_flops_test_mean:.2f} ± "
            f"{100 * row.largest_flops_test_std:.2f} (searched − it: "
            f"{row.diff_largest_flops_pt_mean:+.2f} ± {row.diff_largest_flops_pt_std:.2f} pt); "
            f"{row.proxy}'s pick {100 * row.proxy_pick_test_mean:.2f} ± "
            f"{100 * row.proxy_pick_test_std:.2f} (searched − it: "
            f"{row.diff_proxy_pt_mean:+.2f} ± {row.diff_proxy_pt_std:.2f} pt)"
        )
    common.record_time(NAME, wall, out=args.out)
    print(f"wrote search_quality.csv, _summary.csv, .png to {args.out} ({wall:.0f} s)")


def figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (budget, group) in enumerate(table.groupby("budget_mflops")):
        color = qualitative.Plotly[i]
        for kind, symbol in (
            ("searched", "circle"),
            ("baseline", "square-open"),
            ("largest_flops", "triangle-up-open"),
            ("proxy_pick", "x-thin-open"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=group[f"{kind}_mflops"],
                    y=group[f"{kind}_test_acc"] * 100,
                    mode="markers",
                    name=f"{kind}, budget {budget:.1f} MFLOPs",
                    marker={"symbol": symbol, "size": 11, "color": color},
                    hovertext=[
                        f"{a} (seed {s})" for a, s in zip(group[kind], group["seed"], strict=True)
                    ],
                    marker_line_width=2,
                )
            )
        fig.add_vline(x=budget, line_dash="dot", line_color=color)
    fig.update_layout(
        title="Searched subnet vs DeiT-style, largest-FLOPs and proxy picks (3 seeds each)",
        xaxis_title="MFLOPs (= 2 x MMACs)",
        yaxis_title="test accuracy (%)",
        template="plotly_white",
        width=900,
        height=550,
    )
    return fig


if __name__ == "__main__":
    main()
