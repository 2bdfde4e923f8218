"""The ViT family's encoding of a subnet for the search, and AutoFormer's evolution operators.

Optuna parameters (define-by-run): ``depth``, ``embed_dim``, then ``num_heads_<i>`` and
``mlp_ratio_<i>`` for the active layers ``i < depth`` only (a shallower subnet has no parameters
for deeper layers).

Evolution (AutoFormer's ``get_mutation`` / ``get_crossover``): a mutation resamples the depth and
the embedding width with probability ``resample_prob`` (new layers drawn at random), each
layer's heads and MLP ratio with ``mutation_prob``; a crossover of two parents of the same depth
picks every gene from one of them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .space import SearchSpace, SubnetConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["compatible", "crossover", "from_params", "mutate", "suggest", "to_params"]


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace) -> SubnetConfig:
    """Define-by-run: depth and embedding width first, then heads and MLP ratio per active layer."""
    depth = trial.suggest_categorical("depth", space.depth)
    embed_dim = trial.suggest_categorical("embed_dim", space.embed_dim)
    heads, ratios = [], []
    for i in range(depth):
        heads.append(trial.suggest_categorical(f"num_heads_{i}", space.num_heads))
        ratios.append(trial.suggest_categorical(f"mlp_ratio_{i}", space.mlp_ratio))
    return SubnetConfig(embed_dim, depth, tuple(heads), tuple(ratios))


def to_params(subnet: SubnetConfig) -> dict[str, Any]:
    """The trial parameters that :func:`suggest` gives for ``subnet`` (for enqueueing)."""
    params: dict[str, Any] = {"depth": subnet.depth, "embed_dim": subnet.embed_dim}
    for i, (h, r) in enumerate(zip(subnet.num_heads, subnet.mlp_ratio, strict=True)):
        params[f"num_heads_{i}"] = h
        params[f"mlp_ratio_{i}"] = r
    return params


def from_params(params: Mapping[str, Any]) -> SubnetConfig | None:
    """The subnet a trial's parameters describe, or None if they are incomplete."""
    try:
        depth = int(params["depth"])
        return SubnetConfig(
            int(params["embed_dim"]),
            depth,
            tuple(int(params[f"num_heads_{i}"]) for i in range(depth)),
            tuple(float(params[f"mlp_ratio_{i}"]) for i in range(depth)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def mutate(
    space: SearchSpace,
    parent: SubnetConfig,
    rng: random.Random,
    *,
    mutation_prob: float,
    resample_prob: float,
) -> SubnetConfig:
    """AutoFormer's mutation of ``parent`` (see the module docstring)."""
    depth, heads, ratios = parent.depth, list(parent.num_heads), list(parent.mlp_ratio)
    if rng.random() < resample_prob:
        new_depth = rng.choice(space.depth)
        if new_depth > depth:
            ratios += [rng.choice(space.mlp_ratio) for _ in range(new_depth - depth)]
            heads += [rng.choice(space.num_heads) for _ in range(new_depth - depth)]
        depth, heads, ratios = new_depth, heads[:new_depth], ratios[:new_depth]
    for i in range(depth):
        if rng.random() < mutation_prob:
            ratios[i] = rng.choice(space.mlp_ratio)
    for i in range(depth):
        if rng.random() < mutation_prob:
            heads[i] = rng.choice(space.num_heads)
    embed_dim = parent.embed_dim
    if rng.random() < resample_prob:
        embed_dim = rng.choice(space.embed_dim)
    return SubnetConfig(embed_dim, depth, tuple(heads), tuple(ratios))


def compatible(first: SubnetConfig, second: SubnetConfig) -> bool:
    """Two parents can be crossed when they have the same depth."""
    return first.depth == second.depth


def crossover(
    space: SearchSpace, first: SubnetConfig, second: SubnetConfig, rng: random.Random
) -> SubnetConfig:
    """Gene-wise uniform crossover of two parents of the same depth."""
    pick = rng.choice
    return SubnetConfig(
        pick((first.embed_dim, second.embed_dim)),
        first.depth,
        tuple(pick(pair) for pair in zip(first.num_heads, second.num_heads, strict=True)),
        tuple(pick(pair) for pair in zip(first.mlp_ratio, second.mlp_ratio, strict=True)),
    )
