"""Which subnets to rank: ``k`` subnets stratified across FLOPs.

The FLOP range from the space's smallest to its largest subnet is cut into ``k`` bins of equal
width, and one subnet is drawn uniformly from the members of each bin in a seeded pool of random
subnets (plus the smallest and largest). Equal-width bins spread the picks over the whole range,
including the sparse ends that random sampling seldom reaches; a bin the pool leaves empty takes
the unpicked pool subnet nearest its centre instead.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping

from supernet import Space, Subnet, complexity

from .settings import RankError

__all__ = ["pick_subnets", "slug", "stratified"]


def slug(subnet: Subnet) -> str:
    """A file-name-safe name of ``subnet``: its short name with ``-`` between parts turned into
    ``_``, brackets dropped and list separators into ``-`` (``D80_L5_H3-3-2-4-3_M3-3-2-4-3`` for
    a ViT)."""
    name = str(subnet).replace("-", "_").replace("[", "").replace("]", "")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name.replace("/", "-"))


def pick_subnets(space: Space, k: int, seed: int = 0, pool_size: int = 4096) -> list[Subnet]:
    """``k`` distinct subnets, one per equal-width FLOP bin, cheapest first (deterministic)."""
    rng = random.Random(seed)
    pool = dict.fromkeys([space.smallest(), space.largest()])
    for _ in range(pool_size):
        pool.setdefault(space.sample(rng))
    if len(pool) < k:
        raise RankError(
            f"k={k} but {pool_size} random draws of this space gave only {len(pool)} distinct "
            f"subnets (pool_size={pool_size}); lower k or raise pool_size"
        )
    flops = {s: float(complexity.flops(space, s)) for s in pool}
    low, high = flops[space.smallest()], flops[space.largest()]
    return stratified(pool, flops, k, rng, low, high)


def stratified(
    pool: Iterable[Subnet],
    value: Mapping[Subnet, float],
    k: int,
    rng: random.Random,
    low: float,
    high: float,
) -> list[Subnet]:
    """``k`` distinct subnets of ``pool`` (at least ``k``), one drawn from each of ``k``
    equal-width bins of ``value`` over [``low``, ``high``]; a bin left empty takes the unpicked
    subnet nearest its centre. Sorted by value (then name): deterministic for ``rng``'s seed."""
    pool = list(pool)
    width = (high - low) / k

    def bin_of(s: Subnet) -> int:
        return min(k - 1, max(0, int((value[s] - low) / width))) if width > 0 else 0

    members: list[list[Subnet]] = [[] for _ in range(k)]
    for s in pool:
        members[bin_of(s)].append(s)
    picked: list[Subnet | None] = [rng.choice(group) if group else None for group in members]
    chosen = {s for s in picked if s is not None}
    for i, s in enumerate(picked):
        if s is None:
            centre = low + (i + 0.5) * width
            nearest = min(
                (c for c in pool if c not in chosen), key=lambda c: (abs(value[c] - centre), str(c))
            )
            picked[i] = nearest
            chosen.add(nearest)
    return sorted((s for s in picked if s is not None), key=lambda s: (value[s], str(s)))
