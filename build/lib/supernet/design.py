"""Helpers for designed samples of subnets (what a latency calibration measures): choices drawn
around levels stratified over [0, 1], so that a sample spans a space's cost range instead of
clustering in its middle as uniform draws do."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["pick_at_level", "stratified_levels"]

T = TypeVar("T")


def stratified_levels(n: int, rng: random.Random) -> list[float]:
    """``n`` numbers in [0, 1], one in each of ``n`` equal strata, in random order."""
    levels = [(i + rng.random()) / n for i in range(n)]
    rng.shuffle(levels)
    return levels


def pick_at_level(choices: Sequence[T], level: float, rng: random.Random) -> T:
    """A choice whose index is Binomial(len - 1, level): near the smallest at 0, largest at 1."""
    return choices[sum(rng.random() < level for _ in range(len(choices) - 1))]
