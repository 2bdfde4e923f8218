"""A cost band: rank subnets of similar cost, the way a search under a budget compares them.

``band.<cost>`` (``params``, ``macs``, ``flops``, ``latency_ms``) takes the amounts the budgets
take (``2e6``, ``2M``, ``1.5G``, ``800k``; see :mod:`search.budget`) in one of two forms:

- ``[low, high]``: the window itself, both ends included (``band.flops=[8M,10M]``);
- ``centre+-percent%`` or ``centre+-amount``: a budget ± a share of it or ± an amount
  (``band.flops=8.9M+-10%`` is ``[8.01M, 9.79M]``; ``band.params=250k+-20k``). ``±`` may stand for
  ``+-`` in a YAML file or a quoted override.

Several costs at once are intersected; the picks are spread across the first of them in the order
``params, macs, flops, latency_ms``. :func:`pick_in_band` draws random subnets, keeps the distinct
ones inside the band, cuts the band's occupied range into ``k`` equal-width bins and takes one
subnet from each (an empty bin takes the unpicked subnet nearest its centre), as
:func:`~search.rank.pick.pick_subnets` does across the whole space.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from supernet import Space, Subnet

from ..budget import BudgetError, parse_amount
from ..costs import METRICS, format_cost
from .pick import stratified
from .settings import RankError

__all__ = ["Band", "BandError", "parse_window", "pick_in_band"]

#: A band holding fewer than ``ENOUGH × k`` of the first ``pool_size`` draws is drawn from
#: further, up to ``MORE_DRAWS × pool_size`` draws in all.
ENOUGH = 4
MORE_DRAWS = 16

_CENTRED = re.compile(r"^\s*(?P<centre>[^+±]+?)\s*(?:\+-|±)\s*(?P<width>[^%]+?)\s*(?P<pct>%?)\s*$")


class BandError(RankError):
    """A band that is malformed, or that holds fewer than ``k`` distinct subnets."""


#: Example windows for each cost, for the messages.
_EXAMPLES = {
    "params": ("[4M,6M]", "5M+-10%"),
    "macs": ("[4M,5M]", "4.5M+-10%"),
    "flops": ("[8M,10M]", "8.9M+-10%"),
    "latency_ms": ("[4,6]", "5+-10%"),
}


def _fix(key: str) -> str:
    window, centred = _EXAMPLES.get(key.split(".")[-1], _EXAMPLES["flops"])
    return f"pass {key}={window} or {key}={centred}"


def _syntax(key: str, value: object) -> BandError:
    window, centred = _EXAMPLES.get(key.split(".")[-1], _EXAMPLES["flops"])
    return BandError(
        f"{key} must be [low, high] (like {window}) or centre+-percent (like {centred}), "
        f"got {value!r}; {_fix(key)}"
    )


def _amount(key: str, value: object, whole: object, which: str) -> float:
    """One amount of a window; ``which`` names it in the message ("the low end")."""
    try:
        amount = parse_amount(key, value)
    except BudgetError as exc:
        problem = str(exc).split("; ")[0].removeprefix(f"{key} ")  # "must be positive, got 0"
        shown = f" (in {whole!r})" if whole != value else ""
        raise BandError(f"{key}: {which} {problem}{shown}; {_fix(key)}") from None
    if amount is None:
        raise _syntax(key, whole)
    return amount


def parse_window(key: str, value: object) -> tuple[float, float] | None:
    """``None``, ``[low, high]`` or ``"centre+-x%"`` / ``"centre+-amount"`` → (low, high)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise _syntax(key, value)
        low = _amount(key, value[0], value, "the low end")
        high = _amount(key, value[1], value, "the high end")
    elif isinstance(value, str):
        match = _CENTRED.match(value)
        if not match:
            raise _syntax(key, value)
        centre = _amount(key, match["centre"], value, "the centre")
        width = _amount(key, match["width"], value, "the width")
        if match["pct"]:
            if width >= 100:
                raise BandError(f"{key}: ±{width:g}% reaches zero or below; use less than 100%")
            width = centre * width / 100
        low, high = centre - width, centre + width
        if low <= 0:
            raise BandError(f"{key}: {value!r} reaches zero or below; narrow it")
    else:
        raise _syntax(key, value)
    if low > high:
        raise BandError(
            f"{key}: the low end {format_cost(key.split('.')[-1], low)} is above the high end "
            f"{format_cost(key.split('.')[-1], high)}; write [low, high]"
        )
    return low, high


@dataclass(frozen=True)
class Band:
    """``low <= cost <= high`` for each named cost (an empty band holds every subnet)."""

    windows: tuple[tuple[str, float, float], ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Band:
        if config is not None and not isinstance(config, Mapping):
            raise BandError(f"band must be a mapping, got {config!r}; pass band.flops=[8M,10M]")
        config = dict(config or {})
        unknown = sorted(set(config) - set(METRICS))
        if unknown:
            raise BandError(
                f"unknown band cost(s) {', '.join('band.' + u for u in unknown)}; "
                f"the costs are {', '.join(METRICS)}"
            )
        windows = []
        for metric in METRICS:
            window = parse_window(f"band.{metric}", config.get(metric))
            if window is not None:
                windows.append((metric, *window))
        return cls(tuple(windows))

    def __bool__(self) -> bool:
        return bool(self.windows)

    @property
    def metric(self) -> str:
        """The cost the picks are spread across."""
        return self.windows[0][0] if self.windows else "flops"

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m, _, _ in self.windows)

    def contains(self, costs: Mapping[str, float]) -> bool:
        return all(low <= costs[m] <= high for m, low, high in self.windows)

    def describe(self) -> str:
        return ", ".join(_window_text(m, low, high) for m, low, high in self.windows)

    def to_config(self) -> dict[str, list[float]]:
        return {m: [low, high] for m, low, high in self.windows}


def _window_text(metric: str, low: float, high: float) -> str:
    """``8.01M FLOPs <= flops <= 9.79M FLOPs``; exact where rounding would hide the width
    (``2M+-10`` is ± 10 FLOPs, not ± 10%)."""
    a, b = format_cost(metric, low), format_cost(metric, high)
    if a == b and low != high:
        a, b = (f"{v:,.0f}" if metric != "latency_ms" else f"{v:.6g} ms" for v in (low, high))
    return f"{a} <= {metric} <= {b}"


def pick_in_band(
    space: Space,
    k: int,
    band: Band,
    costs: Callable[[Subnet], Mapping[str, float]],
    seed: int = 0,
    pool_size: int = 4096,
) -> list[Subnet]:
    """``k`` distinct subnets inside ``band``, spread across its cost ``band.metric`` (one per
    equal-width bin of the range the band's subnets occupy), cheapest first; deterministic.

    The pool is the distinct in-band subnets among ``pool_size`` random draws (and the smallest
    and largest subnets), drawn further while it holds fewer than ``ENOUGH × k`` of them, up to
    ``MORE_DRAWS × pool_size`` draws or until ``pool_size`` draws in a row find no new one (the
    band's subnets are exhausted); fewer than ``k`` is a :class:`BandError` that says how many
    were found.
    """
    metric = band.metric
    rng = random.Random(seed)
    cache: dict[Subnet, Mapping[str, float]] = {}

    def cost(s: Subnet) -> Mapping[str, float]:
        if s not in cache:
            cache[s] = costs(s)
        return cache[s]

    pool: dict[Subnet, None] = {}
    for s in (space.smallest(), space.largest()):
        if band.contains(cost(s)):
            pool.setdefault(s)
    draws = last_new = 0
    limit = MORE_DRAWS * pool_size
    while draws < pool_size or (
        len(pool) < ENOUGH * k and draws < limit and draws - last_new < pool_size
    ):
        s = space.sample(rng)
        draws += 1
        if s not in pool and band.contains(cost(s)):
            pool[s] = None
            last_new = draws
    if len(pool) < k:
        small, large = cost(space.smallest()), cost(space.largest())
        spans = " and ".join(
            f"{format_cost(m, small[m])} to {format_cost(m, large[m])}" for m in band.metrics
        )
        raise BandError(
            f"the band {band.describe()} holds {len(pool)} distinct subnet(s) in {draws:,} "
            f"random draws, fewer than k={k} (this space spans {spans}); widen the band, lower "
            f"k, or raise pool_size (now {pool_size:,}) to draw more where a band holds few"
        )
    value = {s: float(cost(s)[metric]) for s in pool}
    return stratified(pool, value, k, rng, min(value.values()), max(value.values()))
