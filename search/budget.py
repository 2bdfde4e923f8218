"""Budgets: optional upper and lower bounds on a subnet's params, MACs, FLOPs and latency.

The config group ``budget`` holds one upper bound per cost (``flops``, ``params``, ``macs``,
``latency_ms``) and one lower bound (``min_flops`` ...; AutoFormer's ``min-param-limits``), each
``null`` (no bound), a number (``2e6``) or a number with an SI suffix (``2M``, ``1.5G``, ``800k``).

A trial's constraints are relative violations, one per bound, ``<= 0`` when the bound holds::

    upper bound u:  (cost - u) / u        lower bound l:  (l - cost) / l

so Optuna's constraint-aware samplers compare how far off infeasible subnets are across costs of
very different magnitudes. Every trial sets the same constraint names (some samplers require it).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from supernet import Space, Subnet
from supernet.common.errors import UserError, quoted

from .costs import METRICS, CostModel, format_cost

__all__ = ["Bound", "Budget", "BudgetError", "parse_amount"]


def _example(key: str) -> str:
    """A plausible value for ``key`` in a fix line: milliseconds for latency, 2M otherwise."""
    return "5" if key.endswith("latency_ms") else "2M"


def _malformed(key: str, value: object) -> str:
    like = "of milliseconds like 5 or 0.8" if key.endswith("latency_ms") else "like 2e6 or 2M"
    return f"{key} must be a number {like}, got {quoted(value)}; pass {key}={_example(key)} (say)"


_AMOUNT = re.compile(r"^\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKMGT]?)\s*$")
#: What Python's float() reads as not finite: an option given on a command line other than
#: Hydra's (search.export's) stays a string.
_NOT_FINITE = re.compile(r"^\s*[+-]?(inf|infinity|nan)\s*$", re.IGNORECASE)
_SCALE = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class BudgetError(UserError):
    """A budget that is malformed or that no subnet of the space can meet."""


def parse_amount(key: str, value: object) -> float | None:
    """``None``, a positive number, or a string such as ``"2M"`` / ``"1.5e6"`` → float."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BudgetError(_malformed(key, value))
    if isinstance(value, (int, float)):
        amount = float(value)
    elif isinstance(value, str):
        if value.strip().lower() in ("", "null", "none"):
            return None
        match = _AMOUNT.match(value)
        if match:
            amount = float(match.group(1)) * _SCALE[match.group(2)]
        elif _NOT_FINITE.match(value):
            amount = float(value)
        else:
            raise BudgetError(_malformed(key, value))
    else:
        raise BudgetError(_malformed(key, value))
    if not math.isfinite(amount):
        raise BudgetError(
            f"{key} must be a finite number, got {quoted(value)}; pass {key}=null for no bound "
            f"or {key}={_example(key)} (say)"
        )
    if amount <= 0:
        raise BudgetError(
            f"{key} must be positive, got {quoted(value)}; pass {key}={_example(key)} (say)"
        )
    return amount


@dataclass(frozen=True)
class Bound:
    """``low <= cost(metric) <= high``; either side may be open (None)."""

    metric: str
    low: float | None = None
    high: float | None = None

    def violations(self, cost: float) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.high is not None:
            out[f"{self.metric}_max"] = (cost - self.high) / self.high
        if self.low is not None:
            out[f"{self.metric}_min"] = (self.low - cost) / self.low
        return out

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return (
                f"{format_cost(self.metric, self.low)} <= {self.metric} <= "
                f"{format_cost(self.metric, self.high)}"
            )
        if self.high is not None:
            return f"{self.metric} <= {format_cost(self.metric, self.high)}"
        return f"{self.metric} >= {format_cost(self.metric, self.low)}"  # type: ignore[arg-type]


@dataclass(frozen=True)
class Budget:
    """All bounds of a search. An empty budget makes every subnet feasible."""

    bounds: tuple[Bound, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Budget:
        """From the ``budget`` config group: ``{flops: 2M, min_params: null, ...}``."""
        config = dict(config or {})
        known = [*METRICS, *(f"min_{m}" for m in METRICS)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise BudgetError(
                f"unknown budget key(s) {', '.join(unknown)}; the keys are {', '.join(known)}"
            )
        bounds = []
        problems = []
        for metric in METRICS:
            high = parse_amount(f"budget.{metric}", config.get(metric))
            low = parse_amount(f"budget.min_{metric}", config.get(f"min_{metric}"))
            if high is None and low is None:
                continue
            if high is not None and low is not None and low > high:
                problems.append(
                    f"budget.min_{metric} ({format_cost(metric, low)}) is above budget.{metric} "
                    f"({format_cost(metric, high)})"
                )
            bounds.append(Bound(metric, low, high))
        if problems:
            raise BudgetError(
                f"{' and '.join(problems)}, so no subnet can meet the budget; make each lower "
                "bound at most its upper bound"
            )
        return cls(tuple(bounds))

    # -- queries ---------------------------------------------------------------------------------
    def __bool__(self) -> bool:
        return bool(self.bounds)

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(b.metric for b in self.bounds)

    def bound(self, metric: str) -> Bound | None:
        return next((b for b in self.bounds if b.metric == metric), None)

    def violations(self, costs: Mapping[str, float]) -> dict[str, float]:
        """One relative violation per bound, ``<= 0`` when it holds."""
        out: dict[str, float] = {}
        for b in self.bounds:
            out.update(b.violations(costs[b.metric]))
        return out

    def is_feasible(self, costs: Mapping[str, float]) -> bool:
        return all(v <= 0 for v in self.violations(costs).values())

    def describe(self) -> str:
        return ", ".join(b.describe() for b in self.bounds) if self.bounds else "no budget"

    def to_config(self) -> dict[str, float | None]:
        """The config-group form, every key present (``None`` for no bound)."""
        out: dict[str, float | None] = {}
        for metric in METRICS:
            b = self.bound(metric)
            out[metric] = b.high if b else None
            out[f"min_{metric}"] = b.low if b else None
        return out

    def check(self, space: Space, costs: CostModel) -> None:
        """Fail at once, giving the space's cost range, if no subnet can meet a bound."""
        if not self.bounds:
            return
        small, large = space.smallest(), space.largest()
        small_cost, large_cost = costs(small), costs(large)
        problems = []
        for b in self.bounds:
            lo, hi = small_cost[b.metric], large_cost[b.metric]
            span = (
                f"this space spans {format_cost(b.metric, lo)} (smallest subnet {small}) to "
                f"{format_cost(b.metric, hi)} (largest subnet {large})"
            )
            if b.high is not None and b.high < lo:
                problems.append(
                    f"budget.{b.metric} = {format_cost(b.metric, b.high)} is below the smallest "
                    f"subnet: {span}; raise budget.{b.metric} to at least "
                    f"{format_cost(b.metric, lo)}"
                )
            if b.low is not None and b.low > hi:
                problems.append(
                    f"budget.min_{b.metric} = {format_cost(b.metric, b.low)} is above the largest "
                    f"subnet: {span}; lower budget.min_{b.metric} to at most "
                    f"{format_cost(b.metric, hi)}"
                )
        if problems:
            raise BudgetError("; ".join(problems))

    def clashes(self) -> bool:
        """Whether the bounds can clash with each other (not only with the space): a window on
        one cost, or bounds on two costs. :meth:`check` takes each bound alone."""
        return len(self.bounds) > 1 or any(
            b.low is not None and b.high is not None for b in self.bounds
        )

    def find_feasible(
        self, space: Space, costs: CostModel, draws: int = 5000, seed: int = 0
    ) -> Subnet | None:
        """A subnet that meets every bound at once, from the smallest, the largest and
        ``draws`` random ones (seeded), or None. None does not prove there is none."""
        rng = random.Random(seed)
        candidates = itertools.chain(
            (space.smallest(), space.largest()), (space.sample(rng) for _ in range(draws))
        )
        return next((s for s in candidates if self.is_feasible(costs(s))), None)
