"""Which subnets to measure: a designed sample that spans the space, and a random held-out set.

Uniformly random subnets cluster around the middle of the cost range (every layer is drawn
independently, so per-layer choices average out). A predictor fitted on them extrapolates at the
ends. The designed sample covers the whole range instead; each family designs it (for the ViT
family: the smallest and the largest subnet, every (embed_dim, depth) cell in turn, and per-layer
heads and MLP ratios drawn around two levels stratified over [0, 1], so attention and MLP costs
vary independently and the fit can tell them apart).

The held-out set is drawn uniformly at random (``Space.sample``), as a search meets them,
and never overlaps the designed sample.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from supernet import Space, Subnet, family_of

from .errors import LatencyError

__all__ = ["count_subnets", "designed_sample", "holdout_sample"]


def count_subnets(space: Space) -> int:
    """How many distinct subnets ``space`` holds."""
    return space.count_subnets()


def _check_room(space: Space, wanted: int) -> None:
    total = count_subnets(space)
    if wanted > total:
        raise LatencyError(
            f"asked for {wanted} distinct subnets, but this space holds only {total}: "
            "ask for fewer (n_samples, n_holdout)"
        )


def designed_sample(space: Space, n: int, rng: random.Random) -> list[Subnet]:
    """``n`` distinct subnets spanning ``space``'s cost range (its family's design; see the
    module docstring)."""
    if n < 2:
        raise LatencyError(
            f"the designed sample needs at least 2 subnets, got n_samples={n}; pass n_samples=32"
        )
    _check_room(space, n)
    return family_of(space).designed_sample(space, n, rng)


def holdout_sample(
    space: Space, n: int, rng: random.Random, exclude: Sequence[Subnet] = ()
) -> list[Subnet]:
    """``n`` distinct uniformly random subnets of ``space``, none of them in ``exclude``."""
    if n < 2:
        raise LatencyError(f"the held-out set needs at least 2 subnets, got n_holdout={n}")
    _check_room(space, n + len(set(exclude)))
    seen = set(exclude)
    picks: list[Subnet] = []
    while len(picks) < n:
        subnet = space.sample(rng)
        if subnet not in seen:
            seen.add(subnet)
            picks.append(subnet)
    return picks
