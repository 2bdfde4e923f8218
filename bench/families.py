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

    python bench/families.py       # the table in README Results: about 3.2 h of both cores
    python bench/families.py --budgets 10e6 20e6 --seeds 0 --trials 20 --epochs 4 \
        --out /tmp/families_smoke                   # a smoke run, its tables elsewhere
    python bench/families.py --seeds 0 --trials 30 --epochs 6 --supernet-epochs 6 \
        --out /tmp/families_short  # the earlier shortened run (about 2 h on 2 cores)

Writes results/benchmarks/families.csv (one row per family, budget, model and seed),
families_summary.csv and families.png.

The full recipe takes longer than one session of a machine that keeps no ``runs/bench/``, so the
benchmark keeps a ledger in results/benchmarks/families_runs.csv (committed with the tables): a
row per model to train — a searched subnet as soon as its search has run, with its space, subnet
and training config — and, once trained, its test accuracy and the seconds each step took. A rerun
trains only the rows without an accuracy: it needs no supernet once every search is recorded, and
a run stopped at any point loses at most the runs in progress. The latencies are measured when
the tables are written, all in the same process (from the architecture, which is all latency
depends on). Delete the ledger's rows (or the file) to measure from scratch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import common
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from search.latency.measure import measure_latency
from search.rank import SubnetJob, recipe, run_jobs
from supernet import Space, Subnet, complexity, family_of
from supernet.checkpoint import load_checkpoint
from supernet.saved_model import read_subnet_yaml
from supernet.swin import SwinSpace

NAME = "families"
WORK = common.CACHE / "families"
FAMILIES = {"vit": ["space=fashion_mnist"], "swin": ["space=swin_fashion_mnist"]}
BUDGETS = [10e6, 20e6, 30e6]  # MACs
LEDGER = "families_runs.csv"
#: A ledger row's identity: what was searched or trained, with which recipe.
KEY = ("family", "budget_mmacs", "model", "seed", "supernet_epochs", "epochs", "trials")


def work_dir(supernet_epochs: int, epochs: int) -> Path:
    """The cache of a run of this benchmark: a shortened recipe gets its own."""
    if (supernet_epochs, epochs) == (common.EPOCHS, common.STANDALONE_EPOCHS):
        return WORK
    return WORK.with_name(f"{WORK.name}_supernet{supernet_epochs}_scratch{epochs}")


def ensure_supernets(work: Path, epochs: int, families: Sequence[str]) -> dict[str, Path]:
    """Train (or finish, or reuse) the families' sandwich supernets, one process each."""
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
        for family in families
    ]
    common.run_parallel(commands)
    return {family: work / f"supernet_{family}" / "supernet.pt" for family in families}


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


def latency_ms(space: Space, subnet: Subnet) -> float:
    """Median CPU latency of the model (the architecture; weights do not change it): batch 1,
    one thread, 30 timed forwards."""
    model = family_of(space).build_model(space, subnet).eval()
    return measure_latency(model, space=space, batch_size=1, threads=1, repeats=30).median_ms


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        str(row["family"]),
        round(float(row["budget_mmacs"]), 6),
        str(row["model"]),
        *(int(row[k]) for k in KEY[3:]),
    )


class Ledger:
    """The models of this benchmark and, once trained, their accuracies: a CSV rewritten whole
    (temporary file, then rename) after every change, so a stop at any moment leaves the last
    complete version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}
        if path.is_file():
            for row in pd.read_csv(path).to_dict("records"):
                self.rows[_key(row)] = row

    def get(self, **key: Any) -> dict[str, Any] | None:
        return self.rows.get(_key(key))

    def put(self, row: dict[str, Any]) -> None:
        self.rows[_key(row)] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        pd.DataFrame(list(self.rows.values())).to_csv(tmp, index=False)
        os.replace(tmp, self.path)

    def trained(self, row: dict[str, Any]) -> bool:
        return not math.isnan(float(row.get("test_acc", math.nan)))


def _row(
    key: dict[str, Any], space: Space, subnet: Subnet, run: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        **key,
        "space": json.dumps(space.to_dict()),
        "subnet": json.dumps(subnet.to_dict()),
        "run": json.dumps(run),
        "test_acc": math.nan,
        **extra,
    }


def _space_subnet(row: dict[str, Any]) -> tuple[Space, Subnet]:
    space = Space.from_dict(json.loads(row["space"]))
    return space, space.subnet_from_dict(json.loads(row["subnet"]))


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
    ledger = Ledger(args.out / LEDGER)
    recipe_key = {
        "supernet_epochs": args.supernet_epochs,
        "epochs": args.epochs,
        "trials": args.trials,
    }

    def key(family: str, budget: float, model: str, seed: int) -> dict[str, Any]:
        return {
            "family": family,
            "budget_mmacs": budget / 1e6,
            "model": model,
            "seed": seed,
            **recipe_key,
        }

    # Searches not in the ledger yet need their family's supernet.
    to_search = [
        (family, budget, seed)
        for family in FAMILIES
        for budget in args.budgets
        for seed in args.seeds
        if ledger.get(**key(family, budget, "searched", seed)) is None
    ]
    checkpoints = ensure_supernets(
        work, args.supernet_epochs, sorted({family for family, _, _ in to_search})
    )
    spaces: dict[str, tuple[Space, dict[str, Any], float]] = {}
    for family, checkpoint in checkpoints.items():
        payload = load_checkpoint(checkpoint)
        train = recipe(payload["train"], {"epochs": args.epochs}).to_dict()
        run = {"mode": "scratch", "data": payload["data"], "train": train}
        run |= {"threads": common.THREADS, "device": "cpu", "resume": "auto"}
        wall = float(pd.read_csv(checkpoint.parent / "metrics.csv")["wall_s"].iloc[-1])
        spaces[family] = (Space.from_dict(payload["space"]), run, wall)
    for row in ledger.rows.values():  # the families searched in an earlier invocation
        same_recipe = all(int(row[k]) == v for k, v in recipe_key.items())
        if same_recipe and row["model"] == "searched" and row["family"] not in spaces:
            space, _ = _space_subnet(row)
            spaces[row["family"]] = (space, json.loads(row["run"]), float(row["supernet_wall_s"]))

    def run_search(task: tuple[str, float, int]) -> tuple[Path, float]:
        family, budget, seed = task
        began = time.perf_counter()
        export = search(work, family, checkpoints[family], budget, seed, args.trials)
        return export, time.perf_counter() - began

    if to_search:
        print(f"{len(to_search)} searches ({args.trials} trials each)", flush=True)
    with ThreadPoolExecutor(max_workers=common.JOBS) as pool:
        for (family, budget, seed), (export, seconds) in zip(
            to_search, pool.map(run_search, to_search), strict=True
        ):
            space, run, supernet_wall = spaces[family]
            _, found, _ = read_subnet_yaml(export)
            ledger.put(
                _row(
                    key(family, budget, "searched", seed),
                    space,
                    found,
                    run,
                    supernet_wall_s=supernet_wall,
                    search_wall_s=seconds,
                )
            )
    for family in FAMILIES:
        space, run, _ = spaces[family]
        for budget in args.budgets:
            own, design = hand_designed(space, budget)
            for seed in args.seeds:
                if ledger.get(**key(family, budget, "hand-designed", seed)) is None:
                    ledger.put(_row(key(family, budget, "hand-designed", seed), own, design, run))

    wanted = [
        ledger.get(**key(family, budget, model, seed))
        for family in FAMILIES
        for budget in args.budgets
        for model in ("searched", "hand-designed")
        for seed in args.seeds
    ]
    rows: list[dict[str, Any]] = [row for row in wanted if row is not None]
    jobs: list[SubnetJob] = []
    for row in rows:
        if ledger.trained(row):
            continue
        space, subnet = _space_subnet(row)
        run_dir = (
            work
            / str(row["family"])
            / f"budget{float(row['budget_mmacs']):g}M"
            / str(row["model"]).replace("-", "_")
            / f"seed{int(row['seed'])}"
        )
        subnet_yaml = run_dir.with_name(f"{run_dir.name}_subnet.yaml")
        subnet_yaml.parent.mkdir(parents=True, exist_ok=True)
        subnet.to_yaml(subnet_yaml)
        config = json.loads(row["run"]) | {"seed": int(row["seed"]), "space": space.to_dict()}
        config |= {"subnet": str(subnet_yaml), "run_dir": str(run_dir)}
        jobs.append(
            SubnetJob(
                "scratch",
                subnet,
                config,
                label=str(row["model"]),
                cost=complexity.flops(space, subnet),
                extra={"row": _key(row)},
            )
        )

    def done(result: dict[str, Any]) -> None:
        row = ledger.rows[result["row"]]
        row |= {"test_acc": result["test_acc"], "train_wall_s": result["wall_s"]}
        row |= {"machine": common.machine(), "finished": common.now()}
        ledger.put(row)
        print(f"  {row['family']} {row['model']} {result['subnet']}: test {row['test_acc']:.4f}")

    print(
        f"training {len(jobs)} models from scratch ({args.epochs} epochs each; "
        f"{len(rows) - len(jobs)} done before)",
        flush=True,
    )
    run_jobs(jobs, common.JOBS, done)

    table_rows = []
    for row in rows:
        space, subnet = _space_subnet(row)
        table_rows.append(
            {
                "family": row["family"],
                "budget_mmacs": float(row["budget_mmacs"]),
                "model": row["model"],
                "seed": int(row["seed"]),
                "subnet": str(subnet),
                "mmacs": complexity.macs(space, subnet) / 1e6,
                "params_m": complexity.params(space, subnet) / 1e6,
                "test_acc": float(row["test_acc"]),
                "latency_ms": latency_ms(space, subnet),
                "supernet_epochs": args.supernet_epochs,
                "epochs": args.epochs,
            }
        )
    table = pd.DataFrame(table_rows).sort_values(["budget_mmacs", "family", "model", "seed"])
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
    common.record_time(NAME, wall, compute_note(rows, wall), args.out)
    written = ["families.csv", "families_summary.csv", *(p.name for p in plots)]
    print(f"wrote {', '.join(written)} to {args.out} ({wall:.0f} s)")


def compute_note(rows: list[dict[str, Any]], wall: float) -> str:
    """The compute behind the tables, summed over every invocation that filled the ledger."""
    searched = [r for r in rows if r["model"] == "searched"]
    supernets = {str(r["family"]): float(r["supernet_wall_s"]) for r in searched}
    searches = sum(float(r["search_wall_s"]) for r in searched)
    training = sum(float(r["train_wall_s"]) for r in rows)
    return (
        f"this invocation {wall:.0f} s; the ledger's compute: supernets "
        f"{sum(supernets.values()):.0f} s, searches {searches:.0f} s, stand-alone runs "
        f"{training:.0f} s (process-seconds; 2 at a time)"
    )


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
