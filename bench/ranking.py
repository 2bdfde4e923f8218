"""Ranking on Fashion-MNIST: does inherited-weight accuracy rank subnets as stand-alone training?

Trains (or reuses, see ``bench/common.py``) a ``uniform`` and a ``sandwich`` supernet with the same
recipe and epochs, and a ``sandwich_long`` one trained 3x longer, then runs the product command
``python -m search.rank`` on each: the same ``k`` subnets (one per equal-width FLOP bin), each
trained alone from scratch with the same recipe (shared between the supernets, so trained once),
and fine-tuned from the inherited weights of the supernets named by ``--finetune`` (default:
``sandwich``). ``--repeat-seeds`` trains the subnets from scratch again with other seeds: τ between
two stand-alone runs is what a perfect proxy could score. Targets: Kendall τ ≥ 0.8; mean
|inherited − stand-alone| ≤ 0.5 pt.

    python bench/ranking.py                       # ~40 min on 2 cores
    python bench/ranking.py --supernets sandwich --finetune sandwich

Writes results/benchmarks/ranking.csv (one row per supernet and subnet), ranking_summary.csv (one
row per supernet), ranking.png (inherited vs stand-alone accuracy) and ranking_gap_<supernet>.png
(inherited / fine-tuned / scratch test accuracy per subnet).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common
import pandas as pd
import plotly.graph_objects as go
import yaml
from plotly.colors import qualitative
from scipy.stats import kendalltau

from search.rank import SubnetJob, recipe, run_jobs
from supernet import SubnetConfig
from supernet.checkpoint import load_checkpoint

NAME = "ranking"


def rank_dir(name: str) -> Path:
    return common.CACHE / f"rank_{name}"


def rank_command(name: str, checkpoint: Path, k: int, epochs: int, finetune: bool) -> list[str]:
    return common.command(
        "search.rank",
        f"supernet={common.rel(checkpoint)}",
        f"k={k}",
        f"train.epochs={epochs}",
        f"finetune={str(finetune).lower()}",
        f"n_jobs={common.JOBS}",
        f"threads={common.THREADS}",
        f"scratch_dir={common.rel(common.CACHE / 'scratch')}",
        f"hydra.run.dir={common.rel(rank_dir(name))}",
    )


def repeat_scratch(checkpoint: Path, name: str, seeds: list[int], epochs: int) -> pd.DataFrame:
    """Train the ranked subnets from scratch again with other seeds (same recipe): the noise of
    stand-alone accuracy itself. One row per subnet, a ``scratch_test_acc_seed<s>`` column each."""
    payload = load_checkpoint(checkpoint)
    train = recipe(payload["train"], {"epochs": epochs}).to_dict()
    ranked = pd.read_csv(rank_dir(name) / "rank.csv")
    jobs = []
    for slug in ranked["subnet"]:
        path = rank_dir(name) / "subnets" / f"{slug}.yaml"
        for seed in seeds:
            config = {
                "mode": "scratch",
                "space": payload["space"],
                "data": payload["data"],
                "train": train,
                "subnet": str(path),
                "seed": seed,
                "threads": common.THREADS,
                "device": "cpu",
                "resume": "auto",
                "run_dir": str(common.CACHE / f"scratch_seed{seed}" / slug),
            }
            subnet = SubnetConfig.from_yaml(path)
            jobs.append(
                SubnetJob(
                    "scratch",
                    subnet,
                    config,
                    cost=float(epochs),
                    extra={"slug": slug, "seed": seed},
                )
            )
    results = run_jobs(jobs, common.JOBS)
    frame = pd.DataFrame(results).pivot(index="slug", columns="seed", values="test_acc")
    frame.columns = [f"scratch_test_acc_seed{s}" for s in frame.columns]
    return frame.reset_index().rename(columns={"slug": "subnet"})


def summary_row(name: str) -> dict[str, object]:
    manifest = yaml.safe_load((rank_dir(name) / "rank.yaml").read_text())
    metrics = pd.read_csv(common.supernet_dir(name) / "metrics.csv").iloc[-1]
    stats = manifest["stats"]
    return {
        "supernet": name,
        "training": " ".join(common.SUPERNETS[name]),
        "train_wall_s": common.training_wall_s(name),
        "val_acc_smallest": metrics["val_acc_smallest"],
        "val_acc_largest": metrics["val_acc_largest"],
        "subnets": stats["subnets"],
        "kendall_tau": stats["kendall_tau"],
        "kendall_p": stats["kendall_p"],
        "spearman_rho": stats["spearman_rho"],
        "kendall_tau_inherited_test": stats["kendall_tau_inherited_test"],
        "kendall_tau_finetune": stats["kendall_tau_finetune"],
        "mean_gap_pt": stats["mean_gap_pt"],
        "mean_abs_gap_pt": stats["mean_abs_gap_pt"],
        "mean_abs_gap_val_pt": stats["mean_abs_gap_val_pt"],
        "mean_finetune_minus_scratch_pt": stats["mean_finetune_minus_scratch_pt"],
        "mean_finetune_minus_inherited_pt": stats["mean_finetune_minus_inherited_pt"],
        "rank_wall_s": manifest["wall_s"],
    }


def scatter(table: pd.DataFrame, summary: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    for i, (name, group) in enumerate(table.groupby("supernet", sort=False)):
        tau = float(summary.set_index("supernet").loc[name, "kendall_tau"])
        fig.add_trace(
            go.Scatter(
                x=group["inherited_val_acc"] * 100,
                y=group["scratch_test_acc"] * 100,
                mode="markers+text",
                text=[f"{f / 1e6:.0f}" for f in group["flops"]],
                textposition="top center",
                textfont={"size": 9},
                name=f"{name} supernet (τ = {tau:.2f})",
                marker={"size": 10, "color": qualitative.Plotly[i]},
                hovertext=group["arch"],
            )
        )
    fig.update_layout(
        title="Inherited vs stand-alone accuracy, Fashion-MNIST (labels: MFLOPs)",
        xaxis_title="inherited-weight validation accuracy (%)",
        yaxis_title="trained alone from scratch: test accuracy (%)",
        template="plotly_white",
        width=900,
        height=650,
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0.0},
    )
    return fig


def gap_figure(table: pd.DataFrame, name: str) -> go.Figure:
    rows = table[table["supernet"] == name]
    labels = [f"{f / 1e6:.1f}" for f in rows["flops"]]
    fig = go.Figure()
    columns = [
        ("inherited_test_acc", "inherited weights"),
        ("finetune_test_acc", "fine-tuned from inherited"),
        ("scratch_test_acc", "trained from scratch"),
    ]
    for column, label in columns:
        if rows[column].notna().any():
            fig.add_trace(go.Bar(x=labels, y=rows[column] * 100, name=label))
    low = float(rows[[c for c, _ in columns]].min().min() * 100)
    fig.update_layout(
        title=f"Test accuracy per subnet ({name} supernet), same recipe for fine-tune and scratch",
        xaxis_title="subnet (MFLOPs)",
        yaxis_title="test accuracy (%)",
        yaxis_range=[low - 2, None],
        barmode="group",
        template="plotly_white",
        width=1000,
        height=500,
    )
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernets", nargs="+", default=list(common.SUPERNETS))
    parser.add_argument(
        "--finetune",
        nargs="*",
        default=["sandwich"],
        help="supernets to fine-tune from (default: sandwich, the better of the same-budget pair)",
    )
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=common.STANDALONE_EPOCHS)
    parser.add_argument(
        "--repeat-seeds",
        type=int,
        nargs="*",
        default=[1],
        help="train the subnets from scratch again with these seeds: the noise ceiling of tau",
    )
    parser.add_argument("--out", type=Path, default=common.OUT)
    args = parser.parse_args()

    start = time.perf_counter()
    checkpoints = common.ensure_supernets(args.supernets)
    args.finetune = [n for n in args.finetune if n in args.supernets]
    # The supernet that fine-tunes goes first: its 2k training runs keep both cores busy, and
    # the other ranks then reuse the k scratch runs.
    order = sorted(args.supernets, key=lambda n: n not in args.finetune)
    for name in order:
        cmd = rank_command(name, checkpoints[name], args.k, args.epochs, name in args.finetune)
        result = common.run(cmd, log=rank_dir(name) / "bench.log")
        print(result.stdout)
    table = pd.concat(
        [pd.read_csv(rank_dir(n) / "rank.csv").assign(supernet=n) for n in args.supernets],
        ignore_index=True,
    )
    table = table[["supernet", *[c for c in table.columns if c != "supernet"]]]
    summary = pd.DataFrame([summary_row(n) for n in args.supernets])
    if args.repeat_seeds:
        repeats = repeat_scratch(checkpoints[order[0]], order[0], args.repeat_seeds, args.epochs)
        table = table.merge(repeats, on="subnet", how="left")
        seeds = ["scratch_test_acc", *[c for c in repeats.columns if c != "subnet"]]
        mean = table[seeds].mean(axis=1)
        first = table[table["supernet"] == order[0]]
        # tau between two stand-alone runs of the same subnets: what a perfect proxy would score
        summary["kendall_tau_scratch_seeds"] = kendalltau(
            first["scratch_test_acc"], first[seeds[1]]
        ).statistic
        summary["kendall_tau_vs_seed_mean"] = [
            kendalltau(g["inherited_val_acc"], mean[g.index]).statistic
            for _, g in table.groupby("supernet", sort=False)
        ]
    wall = time.perf_counter() - start

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "ranking.csv", index=False)
    summary.to_csv(args.out / "ranking_summary.csv", index=False)
    common.save_png(scatter(table, summary), args.out / "ranking.png")
    for name in args.finetune:
        common.save_png(gap_figure(table, name), args.out / f"ranking_gap_{name}.png")
    shown = summary.set_index("supernet")[
        [
            "train_wall_s",
            "kendall_tau",
            "spearman_rho",
            "kendall_tau_inherited_test",
            *[c for c in ("kendall_tau_scratch_seeds", "kendall_tau_vs_seed_mean") if c in summary],
            "mean_gap_pt",
            "mean_abs_gap_pt",
            "mean_finetune_minus_scratch_pt",
        ]
    ]
    print(f"\n{args.k} subnets, stand-alone recipe: {args.epochs} epochs (targets: τ ≥ 0.8, mean")
    print("|inherited − stand-alone| ≤ 0.5 pt; accuracies on the test split)")
    print(shown.T.to_string(float_format=lambda v: f"{v:.3f}"))
    common.record_time(NAME, wall)
    print(f"wrote ranking.csv, ranking_summary.csv, ranking.png to {args.out} ({wall:.0f} s)")


if __name__ == "__main__":
    main()
