"""What a subnet costs: parameters, MACs, FLOPs (exact, from ``supernet.complexity``) and latency.

Latency is predicted by a calibrated profile of the target machine (:mod:`search.latency`);
without one the ``latency_ms`` cost is NaN. :func:`resolve_latency_profile` is the single place
where a profile is found, so that asking for a latency budget or objective without one fails at
once with the command that calibrates one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

from supernet import Space, Subnet, complexity

from .latency import DEFAULT_PROFILE_DIR, LatencyProfile, ProfileError, find_profile

__all__ = [
    "METRICS",
    "UNITS",
    "CostModel",
    "LatencyPredictor",
    "format_cost",
    "resolve_latency_profile",
]

#: The costs every trial records, in the order of the tables.
METRICS = ("params", "macs", "flops", "latency_ms")

#: The unit each cost is written in.
UNITS: dict[str, str] = {
    "params": "params",
    "macs": "MACs",
    "flops": "FLOPs",
    "latency_ms": "ms",
}

#: ``predict(space, subnet) -> milliseconds``.
LatencyPredictor = Callable[[Space, Subnet], float]


def format_cost(metric: str, value: float) -> str:
    """``1.23M params``, ``4.5M FLOPs``, ``3.21 ms``; ``n/a`` for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if metric == "latency_ms":
        return f"{value:.3g} ms"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix} {UNITS.get(metric, metric)}"
    return f"{value:.4g} {UNITS.get(metric, metric)}"


def resolve_latency_profile(
    where: str | Path | None,
    space: Space,
    *,
    needed_by: Iterable[str] = (),
    device: str = "cpu",
    batch_size: int = 1,
    threads: int | None = None,
    option: str = "latency_profile",
) -> LatencyProfile | None:
    """The calibrated latency profile for ``space`` on ``device``, or None when there is none.

    ``where`` is a profile file or a directory of profiles (None: ``latency_profiles/``, where
    ``python -m search.latency calibrate`` files them). ``needed_by`` names the settings that need
    latency (``budget.latency_ms``, an objective ...): when any is given, or ``where`` is given
    explicitly, a missing or unfitting profile fails with the command that calibrates one.
    """
    needed = list(needed_by)
    try:
        return find_profile(
            where if where is not None else DEFAULT_PROFILE_DIR,
            space,
            device=device,
            batch_size=batch_size,
            threads=threads,
            option=option,
        )
    except ProfileError as exc:
        if needed:
            raise ProfileError(f"{' and '.join(needed)} needs predicted latency; {exc}") from None
        if where is not None:
            raise
        return None


class CostModel:
    """``model(subnet) -> {"params", "macs", "flops", "latency_ms"}`` for one image.

    params/MACs/FLOPs are exact (the analytic model equals what PyTorch counts); ``latency_ms`` is
    the predictor's estimate, or NaN without one.
    """

    def __init__(self, space: Space, latency: LatencyPredictor | None = None) -> None:
        self.space = space
        self.latency = latency

    @property
    def has_latency(self) -> bool:
        return self.latency is not None

    def __call__(self, subnet: Subnet) -> dict[str, float]:
        cost = complexity.breakdown(self.space, subnet)
        latency = self.latency(self.space, subnet) if self.latency is not None else math.nan
        return {
            "params": float(cost.params),
            "macs": float(cost.macs),
            "flops": float(cost.flops),
            "latency_ms": float(latency),
        }
