"""Latency predictor accuracy on this machine: held-out MAPE and Kendall tau per space and batch.

For each case, ``search.latency.calibrate`` measures a designed sample of subnets and a uniformly
random held-out set, fits the NNLS predictor on the first and scores it on the second. Targets:
MAPE <= 5 %, tau >= 0.95.

The machine's two cores are shared with other jobs, which stretch wall-clock timings by up to 2x
at random. So the default is one thread timed by its CPU time (``clock=cpu``: the latency the
forward would have on an idle core), and the same run also scores a predictor fitted on the
wall-clock latencies (``wall_*`` columns). ``contention`` is the median wall/CPU time ratio of the
measured subnets (1.00 on an idle machine). ``repeat_tau`` is the tau between two measurement
rounds of the same held-out subnets: the ranking noise of the measurements themselves, a ceiling
for what any predictor can score.

    python bench/latency.py                                   # all four cases, ~10 min
    python bench/latency.py --spaces fashion_mnist --batches 1 --threads 2 --clock wall

Writes ``results/benchmarks/latency.csv`` (one row per case) and
``results/benchmarks/latency_measurements.csv`` (every measured subnet, per case).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import torch

from search.latency import Calibration, calibrate, feature_matrix, fit_nnls, kendall_tau, mape
from supernet import SearchSpace
from supernet.common.atomic import atomic_write

RESULTS = Path(__file__).resolve().parent.parent / "results" / "benchmarks"

#: (n_samples, n_holdout, warmup, repeats, rounds) per (space, batch), sized so that all four
#: cases take ~10 minutes with one thread here: an autoformer_tiny forward at batch 32 takes
#: ~1.3 s of CPU, so that case times one forward per subnet per round, with no warm-up (the
#: first forward of a fresh model is within ~6 % of the next, and the lowest round wins).
_KEYS = ("n_samples", "n_holdout", "warmup", "repeats", "rounds")
SETTINGS: dict[tuple[str, int], dict[str, int]] = {
    case: dict(zip(_KEYS, values, strict=True))
    for case, values in {
        ("fashion_mnist", 1): (40, 30, 2, 10, 10),
        ("fashion_mnist", 32): (40, 30, 1, 3, 8),
        ("autoformer_tiny", 1): (32, 24, 1, 3, 8),
        ("autoformer_tiny", 32): (24, 16, 0, 1, 5),
    }.items()
}
DEFAULT = {"n_samples": 32, "n_holdout": 16, "warmup": 1, "repeats": 3, "rounds": 3}


def _wall_fit(result: Calibration) -> tuple[float, float]:
    """Held-out MAPE and tau of a predictor fitted on the wall-clock latencies of the same run."""
    table, profile = result.table, result.profile
    train = (table["split"] == "train").to_numpy()
    features = feature_matrix(profile.space, result.subnets(), profile.batch_size)
    wall = table["wall_ms"].to_numpy()
    predicted = features @ fit_nnls(features[train], wall[train])
    return mape(predicted[~train], wall[~train]), kendall_tau(predicted[~train], wall[~train])


def run_case(
    space_name: str, batch: int, threads: int, clock: str, seed: int
) -> tuple[dict, pd.DataFrame]:
    settings = SETTINGS.get((space_name, batch), DEFAULT)
    space = SearchSpace.preset(space_name)
    result = calibrate(
        space,
        batch_size=batch,
        threads=threads,
        clock=clock,  # type: ignore[arg-type]
        seed=seed,
        progress=False,
        **settings,
    )
    p, m, table = result.profile, result.profile.metrics, result.table
    row = {
        "space": space_name,
        "batch": batch,
        "threads": p.threads,
        "clock": clock,
        "mape_pct": round(m["holdout_mape_pct"], 2),
        "max_ape_pct": round(m["holdout_max_ape_pct"], 1),
        "kendall_tau": round(m["holdout_kendall_tau"], 3),
        "repeat_tau": round(m["holdout_repeat_tau"], 3) if m["holdout_repeat_tau"] else None,
        "train_mape_pct": round(m["train_mape_pct"], 2),
    }
    if clock == "cpu":
        wall_mape, wall_tau = _wall_fit(result)
        row["wall_mape_pct"], row["wall_tau"] = round(wall_mape, 2), round(wall_tau, 3)
    if "cpu_ms" in table:
        row["contention"] = round(float((table["wall_ms"] / table["cpu_ms"]).median()), 2)
    row |= {
        "min_ms": round(float(table["measured_ms"].min()), 3),
        "max_ms": round(float(table["measured_ms"].max()), 3),
        **settings,
        "seconds": round(result.seconds, 1),
        "device": p.device_name,
        "torch": p.torch_version,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return row, table.assign(space=space_name, batch=batch, threads=p.threads, clock=clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["fashion_mnist", "autoformer_tiny"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--threads", nargs="+", type=int, default=[1])
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu", help="cpu: threads=1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "latency.csv")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    detail = args.out.with_name(f"{args.out.stem}_measurements.csv")
    rows, tables = [], []
    for space_name in args.spaces:
        for batch in args.batches:
            for threads in args.threads:
                row, table = run_case(space_name, batch, threads, args.clock, args.seed)
                rows.append(row)
                tables.append(table)
                print(
                    f"{space_name:<16} batch {batch:>3} threads {threads}: "
                    f"MAPE {row['mape_pct']:5.2f}%  tau {row['kendall_tau']:.3f}  "
                    f"(repeat tau {row['repeat_tau']}, wall MAPE {row.get('wall_mape_pct')}% "
                    f"tau {row.get('wall_tau')}, contention {row.get('contention')}, "
                    f"{row['seconds']:.0f} s)",
                    flush=True,
                )
                # after every case, so that an interrupted run keeps what it measured
                summary = pd.DataFrame(rows)
                measurements = pd.concat(tables, ignore_index=True)
                atomic_write(args.out, lambda tmp, df=summary: df.to_csv(tmp, index=False))
                atomic_write(detail, lambda tmp, df=measurements: df.to_csv(tmp, index=False))
    print()
    print(pd.DataFrame(rows).drop(columns=["device", "torch", "date"]).to_string(index=False))
    print(f"\nwritten: {args.out}, {detail}")


if __name__ == "__main__":
    main()
