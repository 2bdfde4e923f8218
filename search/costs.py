"""What a subnet costs: parameters, MACs, FLOPs (exact, from ``supernet.complexity``) and latency.

Latency is predicted by a calibrated profile of the target machine (the latency module); without
one the ``latency_ms`` cost is NaN. :func:`resolve_latency_predictor` is the single place where a
profile is loaded, so that asking for a latency budget or objective without one fails at once
with a message saying how to calibrate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path

from supernet import SearchSpace, SubnetConfig, complexity
from supernet.errors import UserError

__all__ = [
    "METRICS",
    "UNITS",
    "CostModel",
    "LatencyPredictor",
    "format_cost",
    "resolve_latency_predictor",
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
LatencyPredictor = Callable[[SearchSpace, SubnetConfig], float]

CALIBRATE_HINT = (
    "calibrate a latency profile for the target machine first (see the README's latency "
    "section) and pass search.latency_profile=<path to the profile>"
)


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


def resolve_latency_predictor(
    profile: str | Path | None, space: SearchSpace, needed_by: Iterable[str] = ()
) -> LatencyPredictor | None:
    """The latency predictor of ``profile``, or None when no profile is configured.

    ``needed_by`` names the settings that need latency (``budget.latency_ms``, an objective ...):
    when any is given and no profile is, this fails with a message telling how to calibrate.
    """
    needed = list(needed_by)
    if profile is None:
        if needed:
            raise UserError(f"{' and '.join(needed)} needs predicted latency: {CALIBRATE_HINT}")
        return None
    try:
        from search.latency import LatencyProfile  # type: ignore[attr-defined]
    except ImportError:
        raise UserError(
            f"search.latency_profile={profile} is set, but this installation has no latency "
            "predictor (search.latency); install a version that has it, or drop the setting"
        ) from None
    loaded = LatencyProfile.load(profile)

    def predict(space: SearchSpace, subnet: SubnetConfig) -> float:
        return float(loaded.predict_ms(space, subnet))

    return predict


class CostModel:
    """``model(subnet) -> {"params", "macs", "flops", "latency_ms"}`` for one image.

    params/MACs/FLOPs are exact (the analytic model equals what PyTorch counts); ``latency_ms`` is
    the predictor's estimate, or NaN without one.
    """

    def __init__(self, space: SearchSpace, latency: LatencyPredictor | None = None) -> None:
        self.space = space
        self.latency = latency

    @property
    def has_latency(self) -> bool:
        return self.latency is not None

    def __call__(self, subnet: SubnetConfig) -> dict[str, float]:
        cost = complexity.breakdown(self.space, subnet)
        latency = self.latency(self.space, subnet) if self.latency is not None else math.nan
        return {
            "params": float(cost.params),
            "macs": float(cost.macs),
            "flops": float(cost.flops),
            "latency_ms": float(latency),
        }
