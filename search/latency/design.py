"""Which subnets to measure: a designed sample that spans the space, and a random held-out set.

Uniformly random subnets cluster around the middle of the cost range (every layer is drawn
independently, so per-layer choices average out). A predictor fitted on them extrapolates at the
ends. The designed sample covers the whole range instead: the smallest and the largest subnet,
every (embed_dim, depth) cell in turn, and per-layer heads and MLP ratios drawn around two
*levels* stratified over [0, 1] independently of each other (level 0: all layers at the smallest
choice, level 1: all at the largest, in between: mixed layers), so attention and MLP costs vary
independently and the fit can tell them apart.

The held-out set is drawn uniformly at random (``SearchSpace.sample``), as a search meets them,
and never overlaps the designed sample.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from supernet import SearchSpace, SubnetConfig

from .errors import LatencyError

__all__ = ["count_subnets", "designed_sample", "holdout_sample"]


def count_subnets(space: SearchSpace) -> int:
    """How many distinct subnets ``space`` holds."""
    per_layer = len(space.num_heads) * len(space.mlp_ratio)
    return len(space.embed_dim) * sum(per_layer**d for d in space.depth)


def _stratified_levels(n: int, rng: random.Random) -> list[float]:
    """``n`` numbers in [0, 1], one in each of ``n`` equal strata, in random order."""
    levels = [(i + rng.random()) / n for i in range(n)]
    rng.shuffle(levels)
    return levels


def _pick(choices: Sequence[float], level: float, rng: random.Random) -> float:
    """A choice whose index is Binomial(len - 1, level): near the smallest at 0, largest at 1."""
    index = sum(rng.random() < level for _ in range(len(choices) - 1))
    return choices[index]


def _check_room(space: SearchSpace, wanted: int) -> None:
    total = count_subnets(space)
    if wanted > total:
        raise LatencyError(
            f"asked for {wanted} distinct subnets, but this space holds only {total}: "
            "ask for fewer (n_samples, n_holdout)"
        )


def designed_sample(space: SearchSpace, n: int, rng: random.Random) -> list[SubnetConfig]:
    """``n`` distinct subnets spanning ``space``'s cost range (see the module docstring)."""
    if n < 2:
        raise LatencyError(f"the designed sample needs at least 2 subnets, got n_samples={n}")
    _check_room(space, n)
    picks = {space.smallest(): None, space.largest(): None}  # a dict keeps insertion order
    cells = list(itertools.product(space.embed_dim, space.depth))
    attempts = 0
    while len(picks) < n:
        todo = n - len(picks)
        heads_levels = _stratified_levels(todo, rng)
        mlp_levels = _stratified_levels(todo, rng)
        rng.shuffle(cells)
        for i in range(todo):
            embed_dim, depth = cells[i % len(cells)]
            subnet = SubnetConfig(
                embed_dim=embed_dim,
                depth=depth,
                num_heads=tuple(
                    int(_pick(space.num_heads, heads_levels[i], rng)) for _ in range(depth)
                ),
                mlp_ratio=tuple(_pick(space.mlp_ratio, mlp_levels[i], rng) for _ in range(depth)),
            )
            picks.setdefault(subnet, None)
        attempts += 1
        if attempts > 100:  # a small space whose extremes repeat: fill up at random
            while len(picks) < n:
                picks.setdefault(space.sample(rng), None)
    return list(picks)[:n]


def holdout_sample(
    space: SearchSpace, n: int, rng: random.Random, exclude: Sequence[SubnetConfig] = ()
) -> list[SubnetConfig]:
    """``n`` distinct uniformly random subnets of ``space``, none of them in ``exclude``."""
    if n < 2:
        raise LatencyError(f"the held-out set needs at least 2 subnets, got n_holdout={n}")
    _check_room(space, n + len(set(exclude)))
    seen = set(exclude)
    picks: list[SubnetConfig] = []
    while len(picks) < n:
        subnet = space.sample(rng)
        if subnet not in seen:
            seen.add(subnet)
            picks.append(subnet)
    return picks
