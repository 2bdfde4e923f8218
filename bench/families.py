"""ViT vs Swin at equal cost on Fashion-MNIST: the searched subnet and the best hand-designed model
of each family under three MACs budgets, trained alone, side by side.

Both families train a sandwich supernet with the recipe of ``bench/common.py`` (10,000 training
images, a 2,500-image validation split, 12 epochs, lr 1e-3): the ViT ``fashion_mnist`` space
(4x4 patches, 50 tokens; 6.75-36.1 MMACs) and the Swin ``swin_fashion_mnist`` space (2x2 patches,
stages of 14² and 7² tokens; 4.65-42.7 MMACs). Under each budget (10, 20 and 30 MMACs, spanning
their common range), ``python -m search`` (TPE, 50 trials) searches each supernet and
``python -m search.export`` takes its most accurate feasible subnet. The hand-designed models are
each family's canonical shape, the one with the most MACs within the budget:

- ViT (DeiT): every layer the same heads, width = heads × head_dim, MLP ratio 4, a depth of the
  space;
- Swin (Swin-T): widths doubling per stage (C, 2C), heads = width / head_dim, window 7, MLP ratio
  4, depths (2, 2), (2, 4) or (2, 6).

Every model is then trained alone from scratch with the same recipe for 3 seeds (seed s searches
with seed s); test accuracy mean ± std, MACs, params and the measured CPU latency (batch 1, one
thread, median of 30 forwards) side by side.

    python bench/families.py                        # a few hours on 2 cores
    python bench/families.py --budgets 10e6 20e6 --seeds 0 --trials 20 --epochs 4   # smoke run
    python bench/families.py --seeds 0 --trials 30 --epochs 6 --supernet-epochs 6
        # the shortened run in README Results (about 2 h on 2 cores)

Writes results/benchmarks/families.csv (one row per family, budget, model and seed),
families_summary.csv and families.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import common
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search.latency.measure import measure_latency
from search.rank import SubnetJob, recipe, run_jobs, slug
from supernet import Space, Subnet, complexity, load_subnet
from supernet.checkpoint import load_checkpoint
from supernet.saved_model import read_subnet_yaml
from supernet.swin import SwinSpace
from supernet.train.subnet_training import EXPORT_DIR

NAME = "families"
WORK = common.CACHE / "families"
FAMILIES = {"vit": ["space=fashion_mnist"], "swin": ["space=swin_fashion_mnist"]}
BUDGETS = [10e6, 20e6, 30e6]  # MACs


def work_dir(supernet_epochs: int, epochs: int) -> Path:
    """The cache of a run of this benchmark: a shortened recipe gets its own."""
    if (supernet_epochs, epochs) == (common.EPOCHS, common.STANDALONE_EPOCHS):
        return WORK
    return WORK.with_name(f"{WORK.name}_supernet{supernet_epochs}_scratch{epochs}")


def ensure_supernets(work: Path, epochs: int) -> dict[str, Path]:
    """Train (or finish, or reuse) both families' sandwich supernets, one process each."""
    recipe_overrides = [
        o for o in common.SUPERNETS["sandwich"] if not o.startswith("train.epochs=")
    ]
    commands = [
        common.command(
            "supernet.train",
            *common.DATA,
            *FAMILIES[family],
            *recipe_overrides,
            f"train.epochs={epochs}",
            f"threads={common.THREADS}",
            "resume=auto",
            f"hydra.run.dir={common.rel(work / f'supernet_{family}')}",
        )
        for family in FAMILIES
    ]
    common.run_parallel(commands)
    return {family: work / f"supernet_{family}" / "supernet.pt" for family in FAMILIES}


def _vit_designs(space: Space) -> list[tuple[Space, Subnet]]:
    designs = []
    for heads in range(1, 4 * max(space.num_heads) + 1):  # type: ignore[attr-defined]
        for depth in space.depth:  # type: ignore[attr-defined]
            own = dataclasses.replace(
                space,
                embed_dim=(heads * space.head_dim,),  # type: ignore[attr-defined]
                depth=(depth,),
                num_heads=(heads,),
                mlp_ratio=(4.0,),
                name="deit_style",
            )
            designs.append((own, own.largest()))
    return designs


def _swin_designs(space: Space) -> list[tuple[Space, Subnet]]:
    assert isinstance(space, SwinSpace) and space.num_stages == 2
    designs = []
    for base in range(space.head_dim, 8 * space.head_dim + 1, space.head_dim):
        widths = (base, 2 * base)
        for depths in ((2, 2), (2, 4), (2, 6)):
            windows = tuple((min(7, space.stage_resolution(s)),) for s in range(2))
            own = dataclasses.replace(
                space,
                embed_dim=tuple((w,) for w in widths),
                depth=tuple((d,) for d in depths),
                num_heads=tuple((w // space.head_dim,) for w in widths),
                mlp_ratio=((4.0,), (4.0,)),
                window_size=windows,
                name="swin_style",
            )
            designs.append((own, own.largest()))
    return designs


def hand_designed(space: Space, budget: float) -> tuple[Space, Subnet]:
    """The family's canonical model with the most MACs within ``budget``, and a one-subnet space
    that holds it."""
    designs = _vit_designs(space) if space.family == "vit" else _swin_designs(space)
    within = [(complexity.macs(s, n), s, n) for s, n in designs if complexity.macs(s, n) <= budget]
    if not within:
        raise SystemExit(f"no hand-designed {space.family} model within {budget:.3g} MACs")
    _, own, subnet = max(within, key=lambda t: t[0])
    return own, subnet


def search(
    work: Path, family: str, checkpoint: Path, budget: float, seed: int, trials: int
) -> Path:
    """Search (or reuse a finished search) and export its best subnet; the export dir."""
    run_dir = work / family / f"budget{budget / 1e6:.0f}M" / f"seed{seed}"
    return common.search_and_export(
        checkpoint, run_dir, trials, seed, f"budget.macs={int(budget)}", "search.plots_png=false"
    )


def latency_ms(model_dir: Path) -> float:
    """Median CPU latency of an exported model: batch 1, one thread, 30 timed forwards."""
    space, _, _ = read_subnet_yaml(model_dir)
    model = load_subnet(model_dir)
    return measure_latency(model, space=space, batch_size=1, threads=1, repeats=30).median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=BUDGETS, help="MACs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=50, help="search trials per budget and seed")
    parser.add_argument(
        "--epochs", type=int, default=common.STANDALONE_EPOCHS, help="of each stand-alone run"
    )
    parser.add_argument(
        "--supernet-epochs",
        type=int,
        default=common.EPOCHS,
        help="of each supernet (a shortened recipe caches in its own runs/bench/ folder)",
    )
    parser.add_argument("--out", type=Path, default=common.OUT)
    args = parser.parse_args()

    start = time.perf_counter()
    work = work_dir(args.supernet_epochs, args.epochs)
    checkpoints = ensure_supernets(work, args.supernet_epochs)
    jobs: list[SubnetJob] = []
    for family, checkpoint in checkpoints.items():
        payload = load_checkpoint(checkpoint)
        space = Space.from_dict(payload["space"])
        train = recipe(payload["train"], {"epochs": args.epochs}).to_dict()
        base: dict[str, Any] = {
            "mode": "scratch",
            "data": payload["data"],
            "train": train,
            "threads": common.THREADS,
            "device": "cpu",
            "resume": "auto",
        }
        for budget in args.budgets:
            own, design = hand_designed(space, budget)
            design_yaml = work / family / f"hand_{slug(design)}.yaml"
            design_yaml.parent.mkdir(parents=True, exist_ok=True)
            design.to_yaml(design_yaml)
            for seed in args.seeds:
                export = search(work, family, checkpoint, budget, seed, args.trials)
                _, found, _ = read_subnet_yaml(export)
                extra = {"family": family, "budget": budget, "seed": seed}
                jobs.append(
                    SubnetJob(
                        "scratch",
                        found,
                        {
                            **base,
                            "seed": seed,
                            "space": space.to_dict(),
                            "subnet": str(export),
                            "run_dir": str(export.parent / "scratch"),
                        },
                        label="searched",
                        cost=complexity.flops(space, found),
                        extra={**extra, "model_space": space.to_dict()},
                    )
                )
                jobs.append(
                    SubnetJob(
                        "scratch",
                        design,
                        {
                            **base,
                            "seed": seed,
                            "space": own.to_dict(),
                            "subnet": str(design_yaml),
                            "run_dir": str(work / family / f"hand_{slug(design)}" / f"seed{seed}"),
                        },
                        label="hand-designed",
                        cost=complexity.flops(own, design),
                        extra={**extra, "model_space": own.to_dict()},
                    )
                )
    print(f"training {len(jobs)} models from scratch ({args.epochs} epochs each)", flush=True)
    results = run_jobs(
        jobs,
        common.JOBS,
        lambda r: print(
            f"  {r['family']} {r['label']} {r['subnet']}: test {r['test_acc']:.4f}", flush=True
        ),
    )
    rows = []
    for r in results:
        model_space = Space.from_dict(r["model_space"])
        rows.append(
            {
                "family": r["family"],
                "budget_mmacs": r["budget"] / 1e6,
                "model": r["label"],
                "seed": r["seed"],
                "subnet": str(r["subnet"]),
                "mmacs": complexity.macs(model_space, r["subnet"]) / 1e6,
                "params_m": complexity.params(model_space, r["subnet"]) / 1e6,
                "test_acc": r["test_acc"],
                "latency_ms": latency_ms(Path(r["run_dir"]) / EXPORT_DIR),
                "supernet_epochs": args.supernet_epochs,
                "epochs": args.epochs,
            }
        )
    table = pd.DataFrame(rows).sort_values(["budget_mmacs", "family", "model", "seed"])
    summary = (
        table.groupby(["budget_mmacs", "family", "model"])
        .agg(
            seeds=("seed", "count"),
            subnets=("subnet", "nunique"),
            mmacs=("mmacs", "mean"),
            params_m=("params_m", "mean"),
            latency_ms=("latency_ms", "median"),
            test_mean=("test_acc", "mean"),
            test_std=("test_acc", "std"),
        )
        .reset_index()
    )
    wall = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "families.csv", index=False)
    summary.to_csv(args.out / "families_summary.csv", index=False)
    plots = common.save_png(figure(table), args.out / "families.png")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    common.record_time(NAME, wall)
    written = ["families.csv", "families_summary.csv", *(p.name for p in plots)]
    print(f"wrote {', '.join(written)} to {args.out} ({wall:.0f} s)")


def figure(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    symbols = {("vit", "searched"): "circle", ("vit", "hand-designed"): "circle-open"}
    symbols |= {("swin", "searched"): "diamond", ("swin", "hand-designed"): "diamond-open"}
    for i, ((family, model), group) in enumerate(table.groupby(["family", "model"])):
        fig.add_trace(
            go.Scatter(
                x=group["mmacs"],
                y=group["test_acc"] * 100,
                mode="markers",
                name=f"{family} {model}",
                marker={
                    "symbol": symbols[(family, model)],
                    "size": 11,
                    "color": qualitative.Plotly[i],
                },
                hovertext=[
                    f"{s} (seed {seed}, {lat:.2f} ms)"
                    for s, seed, lat in zip(
                        group["subnet"], group["seed"], group["latency_ms"], strict=True
                    )
                ],
            )
        )
    for budget in sorted(table["budget_mmacs"].unique()):
        fig.add_vline(x=budget, line_dash="dot", line_color="gray")
    fig.update_layout(
        title="ViT vs Swin on Fashion-MNIST at equal MACs: searched and hand-designed models",
        xaxis_title="MMACs per image",
        yaxis_title="test accuracy (%)",
        template="plotly_white",
        width=950,
        height=560,
    )
    return fig


if __name__ == "__main__":
    main()
