"""Calibrating a latency profile: measure a designed sample of subnets, fit, score on held-out.

Each subnet's latency is the lowest of its per-round medians: every round visits all subnets in a
fresh order and takes the median of ``repeats`` timed forwards per subnet. Load from other
processes only ever adds time, so the quietest round is the best estimate of the latency on an
idle device, and interleaving spreads any burst of load over many subnets instead of a few.

``clock="cpu"`` (one CPU thread only) times the thread's CPU time instead of the wall clock, which
ignores the time other jobs hold the core: the way to calibrate on a shared machine. Both clocks
are always read; the table holds each subnet's latency by both (``wall_ms``, ``cpu_ms``) and the
profile is fitted on the chosen one (``measured_ms``).

The C allocator is made steady first unless ``steady_allocator=False`` (see
:mod:`search.latency.allocator`): at batch 32 the same model otherwise measures 25-40 % slower or
faster depending on what the process allocated before.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from supernet import Space, Subnet, complexity, family_of

from .allocator import steady_allocator as _steady_allocator
from .design import designed_sample, holdout_sample
from .device import device_description, parse_device, torch_threads
from .features import feature_matrix, feature_names
from .fit import fit_nnls, kendall_tau, mape
from .measure import Clock, check_clock, check_settings, example_input, interleaved_samples
from .profile import LatencyProfile

__all__ = ["Calibration", "calibrate"]


@dataclass(frozen=True)
class Calibration:
    """A fitted profile and the table of every measured subnet (``split``: train or holdout)."""

    profile: LatencyProfile
    table: pd.DataFrame
    seconds: float

    def subnets(self, split: str | None = None) -> list[Subnet]:
        """The measured subnets, in table order (``split``: only ``train`` or ``holdout``)."""
        rows = self.table if split is None else self.table[self.table["split"] == split]
        space = self.profile.space
        return [space.subnet_from_row(row) for _, row in rows.iterrows()]

    def summary(self) -> str:
        p, m = self.profile, self.profile.metrics
        lines = [
            f"latency profile: {p.space.name or '(unnamed space)'} on {p.device_name}, "
            f"batch {p.batch_size}, {_threads(p.threads)}, {p.measurement.get('clock', 'wall')} "
            f"clock, torch {p.torch_version}",
            f"  measured {p.n_samples} designed + {p.n_holdout} held-out subnets in "
            f"{self.seconds:.0f} s; latency {self.table['measured_ms'].min():.3g}-"
            f"{self.table['measured_ms'].max():.3g} ms",
            f"  held-out MAPE {m['holdout_mape_pct']:.2f}% (max {m['holdout_max_ape_pct']:.1f}%), "
            f"Kendall tau {m['holdout_kendall_tau']:.3f}; train MAPE {m['train_mape_pct']:.2f}%",
        ]
        repeat = m.get("holdout_repeat_tau")
        if repeat is not None:
            lines.append(
                f"  measurement noise: Kendall tau {repeat:.3f} between two rounds of the same "
                "held-out subnets (a ceiling for the predictor's tau)"
            )
        return "\n".join(lines)


def _threads(n: int) -> str:
    return f"{n} thread" if n == 1 else f"{n} threads"


def _row(space: Space, subnet: Subnet, split: str) -> dict[str, object]:
    return {
        "split": split,
        "subnet": str(subnet),
        **subnet.to_row(),
        "macs": complexity.macs(space, subnet),
    }


def calibrate(
    space: Space,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    threads: int | None = None,
    n_samples: int = 32,
    n_holdout: int = 16,
    warmup: int = 2,
    repeats: int = 5,
    rounds: int = 3,
    seed: int = 0,
    clock: Clock = "wall",
    steady_allocator: bool = True,
    progress: bool | str = True,
) -> Calibration:
    """Measure ``n_samples`` designed and ``n_holdout`` random subnets of ``space``; fit; score.

    The models are the family's standalone models with random weights (latency does not depend
    on the weights); torch's global RNG is left as it was. See the module docstring for how a
    latency is measured.
    """
    check_settings(batch_size=batch_size, warmup=warmup, repeats=repeats, rounds=rounds)
    parsed = parse_device(device)
    allocator = _steady_allocator() if steady_allocator else "system default"
    rng = random.Random(seed)
    train = designed_sample(space, n_samples, rng)
    holdout = holdout_sample(space, n_holdout, rng, exclude=train)
    subnets = train + holdout
    x = example_input(space=space, batch_size=batch_size, device=parsed)
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch_threads(threads) as used_threads:
        check_clock(clock, parsed, used_threads)
        samples = interleaved_samples(
            subnets,
            lambda s: family_of(space).build_model(space, s),
            x,
            rounds=rounds,
            warmup=warmup,
            repeats=repeats,
            rng=rng,
            progress=progress,
        )
    seconds = time.perf_counter() - start

    rows = [_row(space, s, "train") for s in train] + [_row(space, s, "holdout") for s in holdout]
    table = pd.DataFrame(rows)
    medians = {
        c: np.array([[statistics.median(t.get(c)) for t in samples[s]] for s in subnets])
        for c in ("wall", "cpu")
    }
    table["measured_ms"] = medians[clock].min(axis=1)
    table["wall_ms"] = medians["wall"].min(axis=1)
    if parsed.type == "cpu" and used_threads == 1:
        table["cpu_ms"] = medians["cpu"].min(axis=1)
    table["median_all_ms"] = [
        statistics.median(x for t in samples[s] for x in t.get(clock)) for s in subnets
    ]
    for i in range(rounds):
        table[f"round{i + 1}_ms"] = medians[clock][:, i]

    features = feature_matrix(space, subnets, batch_size)
    is_train = (table["split"] == "train").to_numpy()
    coefficients = fit_nnls(features[is_train], table["measured_ms"][is_train])
    table["predicted_ms"] = features @ coefficients
    table["ape_pct"] = (table["predicted_ms"] / table["measured_ms"] - 1).abs() * 100

    held = table[~is_train]
    fitted = table[is_train]
    metrics: dict[str, float | None] = {
        "holdout_mape_pct": mape(held["predicted_ms"], held["measured_ms"]),
        "holdout_max_ape_pct": float(held["ape_pct"].max()),
        "holdout_kendall_tau": kendall_tau(held["predicted_ms"], held["measured_ms"]),
        "train_mape_pct": mape(fitted["predicted_ms"], fitted["measured_ms"]),
        "holdout_repeat_tau": (
            kendall_tau(held["round1_ms"], held["round2_ms"]) if rounds >= 2 else None
        ),
    }
    profile = LatencyProfile(
        device=parsed.type,
        device_name=device_description(parsed),
        batch_size=batch_size,
        threads=used_threads,
        space=space,
        coefficients=dict(zip(feature_names(space), (float(c) for c in coefficients), strict=True)),
        metrics={k: (round(v, 6) if v is not None else None) for k, v in metrics.items()},
        n_samples=len(train),
        n_holdout=len(holdout),
        measurement={
            "clock": clock,
            "allocator": allocator,
            "warmup": warmup,
            "repeats": repeats,
            "rounds": rounds,
            "seed": seed,
        },
    )
    return Calibration(profile=profile, table=table, seconds=seconds)
