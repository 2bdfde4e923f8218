"""Ranking inside budget bands on Fashion-MNIST: does the supernet know more than the FLOP count?

A search under a FLOP budget compares subnets of similar cost, so that is where a supernet's
ranking has to be judged: against stand-alone training, and against the rankers that cost nothing
(FLOPs, params, depth, zero-cost proxies). For each of the two search-quality budgets B
(``bench/search_quality.py``: 8.9 and 15.6 MFLOPs) the band is its top fifth,
``band.flops=[0.8 B, B]`` — the subnets a search under B chooses among. In each band
``python -m search.rank`` picks ``--k`` subnets spread across the band, trains each alone with
``--seeds`` (the stand-alone reference: their mean test accuracy) and ranks them by the inherited
validation accuracy of the ``sandwich`` supernet and of the 3x-longer ``sandwich_long`` one, and by
every proxy (``search/rank/proxies.py``). The stand-alone runs are shared between the supernets
(``scratch_dir``), so each is trained once.

Before any ranker is judged, the reference must be measurable: the seed-to-seed τ of the band
(split-half, see ``search/rank/noise.py``) should reach 0.6. ``--epochs`` lists the stand-alone
lengths tried (each a full set of runs); the longest is the reference. The noise curve gives the
split-half τ for every number of seeds from 2 to ``len(--seeds)`` (averaged over the seed subsets
of that size) at every length tried.

    python bench/ranking.py                          # 12-epoch references, seeds 0-2
    python bench/ranking.py --epochs 12 24 --seeds 0 1 2 3 4
    python bench/ranking.py --seeds 0 1 2 3 4 --band-seeds 5 3   # 5 seeds in the first band
    python bench/ranking.py --bands 8.9M --epochs 36 --keep   # add 36-epoch references to one band

``--keep`` keeps, from the tables already in ``--out``, the rows of every (band, length) this
invocation does not run, so a longer reference can be added to a finished run without training
its shorter runs again (they need not be in ``runs/bench/`` any more).

Writes results/benchmarks/ranking.csv (one row per band, supernet and subnet),
ranking_summary.csv (one row per band and ranker: τ, ρ, cost), ranking_noise.csv (the seed-to-seed
τ per band, epochs and number of seeds), ranking_noise_epochs.csv (the seed-to-seed τ of validation
accuracy after each epoch of those runs), ranking.png (τ per ranker and band, with the noise
ceiling) and ranking_noise.png (the noise curve).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import common
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import yaml
from plotly.colors import qualitative
from plotly.subplots import make_subplots
from search_quality import default_budgets

from search.rank import MEASURABLE_TAU, pairwise_tau, split_half_tau
from supernet import SearchSpace
from supernet.checkpoint import load_checkpoint

NAME = "ranking"
#: The supernets ranked: the sandwich one and the one trained 3x longer.
RANKED = ("sandwich", "sandwich_long")
#: A band is the top fifth of a budget: [(1 - BAND) B, B].
BAND = 0.2


def scratch_dir(epochs: int) -> Path:
    return common.CACHE / "rank_scratch" / f"e{epochs}"


def rank_dir(band: str, supernet: str, epochs: int) -> Path:
    return common.CACHE / f"rank_{band}_{supernet}_e{epochs}"


def bands(space: SearchSpace) -> list[tuple[str, float, int, int]]:
    """(name, budget, low, high) per search-quality budget."""
    return [
        (f"{budget / 1e6:.1f}M", budget, round((1 - BAND) * budget), round(budget))
        for budget in default_budgets(space)
    ]


def rank_command(
    checkpoint: Path,
    band: tuple[str, float, int, int],
    supernet: str,
    k: int,
    seeds: list[int],
    epochs: int,
) -> list[str]:
    name, _, low, high = band
    return common.command(
        "search.rank",
        f"supernet={common.rel(checkpoint)}",
        f"k={k}",
        f"band.flops=[{low},{high}]",
        f"seeds=[{','.join(map(str, seeds))}]",
        "finetune=false",
        f"train.epochs={epochs}",
        f"n_jobs={common.JOBS}",
        f"threads={common.THREADS}",
        "png=false",
        f"scratch_dir={common.rel(scratch_dir(epochs))}",
        f"hydra.run.dir={common.rel(rank_dir(name, supernet, epochs))}",
    )


def noise_rows(table: pd.DataFrame, band: str, epochs: int, seeds: list[int]) -> list[dict]:
    """Split-half and pairwise seed-to-seed τ for every number of seeds m (2..n), each averaged
    over the subsets of m seeds."""
    columns = [f"scratch_test_acc_seed{s}" for s in seeds]
    runs = table[columns].to_numpy(dtype=float)
    rows = []
    for m in range(2, len(seeds) + 1):
        subsets = list(itertools.combinations(range(len(seeds)), m))
        rows.append(
            {
                "band": band,
                "epochs": epochs,
                "seeds": m,
                "split_half_tau": float(
                    np.mean([split_half_tau(runs[:, list(c)]) for c in subsets])
                ),
                "pairwise_tau": float(np.mean([pairwise_tau(runs[:, list(c)]) for c in subsets])),
                "subsets": len(subsets),
                # over all seeds: how far apart the subnets are, and how far apart the seeds
                "accuracy_spread_pt": float(np.ptp(runs.mean(1)) * 100),
                "mean_seed_std_pt": float(np.std(runs, axis=1, ddof=1).mean() * 100),
            }
        )
    return rows


def epoch_rows(table: pd.DataFrame, band: str, epochs: int, seeds: list[int]) -> list[dict]:
    """Seed-to-seed τ of the validation accuracy after each epoch of the ``epochs``-epoch runs
    (their metrics.csv): how the stand-alone ranking settles as training proceeds. Not the same as
    training for fewer epochs (the schedule is the ``epochs``-epoch one), but free."""
    per_epoch: dict[int, list[list[float]]] = {}
    for slug in table["subnet"]:
        curves = [
            pd.read_csv(scratch_dir(epochs) / f"seed{s}" / slug / "metrics.csv").set_index("epoch")
            for s in seeds
        ]
        for epoch in curves[0].index:
            per_epoch.setdefault(int(epoch), []).append(
                [float(c.loc[epoch, "val_acc"]) for c in curves]
            )
    return [
        {
            "band": band,
            "epochs": epochs,
            "epoch": epoch,
            "seeds": len(seeds),
            "split_half_tau_val": split_half_tau(np.array(rows)),
            "pairwise_tau_val": pairwise_tau(np.array(rows)),
        }
        for epoch, rows in sorted(per_epoch.items())
    ]


def summary_rows(
    band: tuple[str, float, int, int], epochs: int, supernets: list[str]
) -> list[dict]:
    """One row per ranker (each supernet, then each proxy once) from the bands' rank.yaml files."""
    rows: list[dict] = []
    for supernet in supernets:
        path = rank_dir(band[0], supernet, epochs) / "rank.yaml"
        if not path.is_file():
            continue
        manifest = yaml.safe_load(path.read_text())
        stats = manifest["stats"]
        for ranker in manifest["rankers"]:
            name = supernet if ranker["ranker"] == "supernet" else ranker["ranker"]
            if any(r["ranker"] == name for r in rows):
                continue  # a proxy scores the same subnets the same way for either supernet
            rows.append(
                {
                    "band": band[0],
                    "band_mflops": f"{band[2] / 1e6:.2f}-{band[3] / 1e6:.2f}",
                    "epochs": epochs,
                    "ranker": name,
                    "kind": ranker["kind"],
                    "kendall_tau": ranker["kendall_tau"],
                    "kendall_p": ranker["kendall_p"],
                    "spearman_rho": ranker["spearman_rho"],
                    "cost_s": ranker["cost_s"],
                    "seeds": stats["seeds"],
                    "seed_tau_split_half": stats["seed_tau_split_half"],
                    "seed_tau_pairwise": stats["seed_tau_pairwise"],
                    "measurable": (stats["seed_tau_split_half"] or 0) >= MEASURABLE_TAU,
                    "subnets": stats["subnets"],
                }
            )
    return rows


def reference_label(row: pd.Series) -> str:
    return f"band {row['band_mflops']} MFLOPs, {row['epochs']}-epoch reference"


def kept(path: Path, new: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``new`` after the rows of ``path``'s table whose ``keys`` this invocation did not produce."""
    if not path.is_file() or new.empty:
        return new
    old = pd.read_csv(path)
    if not set(keys) <= set(old.columns):
        raise SystemExit(f"--keep: {path} has no {', '.join(keys)} columns; run without --keep")
    done = set(new[keys].astype(str).itertuples(index=False, name=None))
    stay = [tuple(row) not in done for row in old[keys].astype(str).itertuples(index=False)]
    return pd.concat([old[stay], new], ignore_index=True)


def tau_figure(summary: pd.DataFrame) -> go.Figure:
    names = list(dict.fromkeys(summary["ranker"]))
    fig = go.Figure()
    for i, (_, group) in enumerate(summary.groupby(["band", "epochs"], sort=False)):
        by = group.set_index("ranker")
        fig.add_trace(
            go.Bar(
                x=names,
                y=[by.loc[n, "kendall_tau"] if n in by.index else None for n in names],
                name=reference_label(group.iloc[0]),
                marker={"color": qualitative.Plotly[i]},
            )
        )
        ceiling = group["seed_tau_split_half"].iloc[0]
        if ceiling == ceiling:
            fig.add_hline(
                y=ceiling,
                line_dash="dash",
                line_color=qualitative.Plotly[i],
                annotation_text=f"split-half τ {ceiling:.2f} ({group['epochs'].iloc[0]} epochs)",
                # labels of close lines apart: alternate corners
                annotation_position=("top right", "bottom right", "top left", "bottom left")[i % 4],
                annotation_font_color=qualitative.Plotly[i],
            )
    fig.update_layout(
        title="Kendall τ with stand-alone accuracy inside two FLOP bands (Fashion-MNIST)",
        yaxis_title="Kendall τ (mean of the stand-alone seeds)",
        yaxis_range=[-1, 1],
        barmode="group",
        template="plotly_white",
        width=1000,
        height=550,
    )
    return fig


def noise_figure(noise: pd.DataFrame, within: pd.DataFrame) -> go.Figure:
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "split-half τ vs seeds (test)",
            "pairwise τ vs seeds (test)",
            "split-half τ after each epoch (val)",
        ),
    )
    for i, ((band, epochs), group) in enumerate(noise.groupby(["band", "epochs"], sort=False)):
        color = qualitative.Plotly[i % 10]
        for col, column in ((1, "split_half_tau"), (2, "pairwise_tau")):
            fig.add_trace(
                go.Scatter(
                    x=group["seeds"],
                    y=group[column],
                    mode="lines+markers",
                    name=f"band {band}, {epochs} epochs",
                    line={"color": color},
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
        curve = within[(within["band"] == band) & (within["epochs"] == epochs)]
        fig.add_trace(
            go.Scatter(
                x=curve["epoch"],
                y=curve["split_half_tau_val"],
                mode="lines+markers",
                line={"color": color, "dash": "dot"},
                showlegend=False,
            ),
            row=1,
            col=3,
        )
    fig.add_hline(y=MEASURABLE_TAU, line_dash="dot", line_color="gray")
    fig.update_xaxes(title_text="stand-alone seeds", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="stand-alone seeds", dtick=1, row=1, col=2)
    fig.update_xaxes(title_text="epoch", row=1, col=3)
    fig.update_yaxes(title_text="seed-to-seed Kendall τ", range=[-0.4, 1])
    fig.update_layout(
        title="How reproducible is the stand-alone ranking inside a band?",
        template="plotly_white",
        width=1200,
        height=450,
    )
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=10, help="subnets per band")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--band-seeds",
        type=int,
        nargs="+",
        metavar="N",
        help="per band, how many of --seeds (the first N) it trains (default: all of them in "
        "each band); e.g. --seeds 0 1 2 3 4 --band-seeds 5 3",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        nargs="+",
        default=[common.STANDALONE_EPOCHS],
        help="stand-alone lengths tried (the longest is the reference)",
    )
    parser.add_argument(
        "--supernets", nargs="+", choices=RANKED, default=list(RANKED), help="supernets ranked"
    )
    parser.add_argument(
        "--bands",
        nargs="+",
        metavar="NAME",
        help="the bands run, by budget name (8.9M, 15.6M; default: both)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the rows of the (band, length) pairs not run here from the tables in --out",
    )
    parser.add_argument("--out", type=Path, default=common.OUT)
    args = parser.parse_args()

    if args.band_seeds and not all(2 <= n <= len(args.seeds) for n in args.band_seeds):
        parser.error(f"--band-seeds: each from 2 to the {len(args.seeds)} seeds of --seeds")
    start = time.perf_counter()
    checkpoints = common.ensure_supernets(args.supernets)
    space = SearchSpace.from_dict(load_checkpoint(checkpoints[args.supernets[0]])["space"])
    reference = max(args.epochs)
    all_bands = bands(space)
    if args.bands:
        names = [b[0] for b in all_bands]
        unknown = [n for n in args.bands if n not in names]
        if unknown:
            parser.error(f"--bands: no band {', '.join(unknown)}; the bands are {', '.join(names)}")
        all_bands = [b for b in all_bands if b[0] in args.bands]
    counts = args.band_seeds or [len(args.seeds)] * len(all_bands)
    if len(counts) != len(all_bands):
        parser.error(f"--band-seeds takes one number per band run ({len(all_bands)})")
    tables, summaries, noise, within = [], [], [], []
    for band, count in zip(all_bands, counts, strict=True):
        seeds = args.seeds[:count]
        for epochs in sorted(args.epochs):
            # the first supernet's rank trains the stand-alone runs; the others reuse them
            names = args.supernets if epochs == reference else args.supernets[:1]
            for supernet in names:
                cmd = rank_command(checkpoints[supernet], band, supernet, args.k, seeds, epochs)
                result = common.run(cmd, log=rank_dir(band[0], supernet, epochs) / "bench.log")
                print(result.stdout[-2500:])
                table = pd.read_csv(rank_dir(band[0], supernet, epochs) / "rank.csv")
                tables.append(table.assign(band=band[0], supernet=supernet, epochs=epochs))
            noise += noise_rows(tables[-1], band[0], epochs, seeds)
            within += epoch_rows(tables[-1], band[0], epochs, seeds)
            if epochs == reference:
                summaries += summary_rows(band, epochs, args.supernets)
    wall = time.perf_counter() - start

    table = pd.concat(tables, ignore_index=True)
    table = table[
        [
            "band",
            "supernet",
            "epochs",
            *[c for c in table.columns if c not in ("band", "supernet", "epochs")],
        ]
    ]
    summary, noise_table = pd.DataFrame(summaries), pd.DataFrame(noise)
    within_table = pd.DataFrame(within)
    if args.keep:
        table = kept(args.out / "ranking.csv", table, ["band", "supernet", "epochs"])
        summary = kept(args.out / "ranking_summary.csv", summary, ["band", "epochs"])
        noise_table = kept(args.out / "ranking_noise.csv", noise_table, ["band", "epochs"])
        within_table = kept(args.out / "ranking_noise_epochs.csv", within_table, ["band", "epochs"])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "ranking.csv", index=False)
    summary.to_csv(args.out / "ranking_summary.csv", index=False)
    noise_table.to_csv(args.out / "ranking_noise.csv", index=False)
    within_table.to_csv(args.out / "ranking_noise_epochs.csv", index=False)
    common.save_png(tau_figure(summary), args.out / "ranking.png")
    common.save_png(noise_figure(noise_table, within_table), args.out / "ranking_noise.png")
    summary = summary.assign(reference=summary.apply(reference_label, axis=1))
    shown = summary.pivot(index="ranker", columns="reference", values="kendall_tau")
    print(f"\nKendall τ inside each band ({args.k} subnets):")
    print(shown.loc[list(dict.fromkeys(summary["ranker"]))].to_string(float_format="{:.2f}".format))
    print("\nseed-to-seed τ (split-half) per band, epochs and seeds:")
    print(noise_table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    # with --keep, this invocation's time adds to that of the rows it kept
    note = f"{wall:.0f} s for {' '.join(sys.argv[1:])}" if args.keep else ""
    common.record_time(NAME, wall, note, out=args.out, add=args.keep)
    print(
        f"wrote ranking.csv, ranking_summary.csv, ranking_noise.csv, ranking.png, "
        f"ranking_noise.png to {args.out} ({wall:.0f} s)"
    )


if __name__ == "__main__":
    main()
