"""How noisy the stand-alone reference is, and whether a ranker can be told apart from that noise.

With ``seeds=[s1, s2, ...]`` every subnet is trained alone once per seed and the reference is the
mean stand-alone test accuracy. Two seed-to-seed numbers describe its noise:

- ``seed_tau_pairwise``: the mean Kendall τ between the accuracies of two single seeds, over every
  pair of seeds (how well one stand-alone run orders the subnets as another does);
- ``seed_tau_split_half`` — *the noise ceiling*: the seeds are split into two halves (sizes
  ⌊n/2⌋ and ⌈n/2⌉), τ is taken between the two halves' mean accuracies, and averaged over every
  such split (over :data:`MAX_SPLITS` random ones beyond that many). It is what a ranker as good
  as retraining the subnets ⌊n/2⌋ times scores against an independent reference, and it rises
  with the number of seeds as the means settle (with two seeds it is the pairwise τ). The
  reference counts as measurable from
  :data:`MEASURABLE_TAU`; a ranker above the ceiling orders subnets better than retraining them
  does, which only a ranker close to the true accuracies can.

:func:`difference_interval` gives a paired bootstrap interval (over subnets) of the difference of
two rankers' τ: whether the supernet beats the best proxy, or cannot be told apart from it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import kendalltau

__all__ = [
    "MEASURABLE_TAU",
    "SIGNIFICANCE",
    "chance_p",
    "difference_interval",
    "pairwise_tau",
    "split_half_tau",
    "tau",
]

#: The split-half τ from which the stand-alone reference counts as measurable (issue 16).
MEASURABLE_TAU = 0.6
#: The p-value below which a ranker's τ counts as told apart from a random order.
SIGNIFICANCE = 0.05


def tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's τ-b; NaN when either side is constant or has a NaN."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if np.isnan(a).any() or np.isnan(b).any() or len(set(a)) < 2 or len(set(b)) < 2:
        return math.nan
    return float(kendalltau(a, b).statistic)


def pairwise_tau(accuracies: np.ndarray) -> float:
    """Mean τ between two seeds' accuracies over every pair; ``accuracies`` is subnets × seeds.
    NaN with fewer than two seeds."""
    n = accuracies.shape[1]
    pairs = itertools.combinations(range(n), 2)
    values = [tau(accuracies[:, i], accuracies[:, j]) for i, j in pairs]
    return float(np.nanmean(values)) if values and not all(map(math.isnan, values)) else math.nan


#: Above this many splits into halves (12 seeds: 924), :func:`split_half_tau` averages over
#: this many random ones instead: every split of 20 seeds took 40 s, of 30 seeds hours.
MAX_SPLITS = 2000


def _halves(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """Every split of ``n`` seeds' indices into a half of ⌊n/2⌋, or :data:`MAX_SPLITS` distinct
    random ones (seeded) when there are more."""
    if math.comb(n, n // 2) <= MAX_SPLITS:
        return list(itertools.combinations(range(n), n // 2))
    rng = np.random.default_rng(seed)
    halves: set[tuple[int, ...]] = set()
    while len(halves) < MAX_SPLITS:
        halves.add(tuple(sorted(int(i) for i in rng.choice(n, n // 2, replace=False))))
    return sorted(halves)


def split_half_tau(accuracies: np.ndarray) -> float:
    """Mean τ between the mean accuracies of two halves of the seeds, over every split into
    halves of ⌊n/2⌋ and ⌈n/2⌉ seeds (or :data:`MAX_SPLITS` random splits, for many seeds);
    ``accuracies`` is subnets × seeds. NaN below two seeds."""
    n = accuracies.shape[1]
    if n < 2:
        return math.nan
    values = []
    for half in _halves(n):
        rest = [i for i in range(n) if i not in half]
        values.append(tau(accuracies[:, list(half)].mean(1), accuracies[:, rest].mean(1)))
    if all(math.isnan(v) for v in values):
        return math.nan
    return float(np.nanmean(values))


def chance_p(tau_value: float, subnets: int) -> float:
    """The two-sided p-value of a Kendall τ of ``tau_value`` (rounded to the nearest one ``subnets``
    untied values can have) between two orders of ``subnets`` items: how often a random order
    agrees as well. With few subnets even a high τ is chance (4 subnets: τ 0.67 has p 0.33)."""
    if subnets < 2 or math.isnan(tau_value):
        return math.nan
    pairs = subnets * (subnets - 1) // 2
    discordant = round((1 - tau_value) / 2 * pairs)
    # the permutation with that many inversions, from its Lehmer code
    remaining, order = list(range(subnets)), []
    for i in range(subnets):
        step = min(discordant, subnets - 1 - i)
        discordant -= step
        order.append(remaining.pop(step))
    return float(kendalltau(range(subnets), order).pvalue)


def difference_interval(
    first: Sequence[float] | np.ndarray,
    second: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    *,
    level: float = 0.9,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """τ(first, reference) − τ(second, reference) and its paired bootstrap interval at
    ``level`` (subnets resampled with replacement; resamples where a τ is undefined are
    skipped). NaNs when the difference itself is undefined."""
    a, b, r = (np.asarray(v, dtype=float) for v in (first, second, reference))
    diff = tau(a, r) - tau(b, r)
    if math.isnan(diff):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        i = rng.integers(0, len(r), len(r))
        d = tau(a[i], r[i]) - tau(b[i], r[i])
        if not math.isnan(d):
            diffs.append(d)
    if not diffs:
        return diff, math.nan, math.nan
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return diff, float(low), float(high)
