"""The one encoding of a Swin subnet for the search: Optuna parameters and evolution operators.

Optuna parameters (define-by-run, every one a ``suggest_categorical``), stage by stage::

    s0.depth, s0.embed_dim, s0.b0.num_heads, s0.b0.mlp_ratio, s0.b0.window_size, s0.b1..., s1.depth

Only active blocks get parameters (``s{s}.b{j}`` for ``j < depth[s]``). A dimension with a single
choice (a stage whose windows all cover its map, say) is still suggested: the parameters of every
trial then name every gene, :func:`from_params` needs no space, and Optuna treats a one-choice
distribution as fixed, so it costs the samplers nothing. Table columns and the short name live on
:class:`~.space.SwinSubnet` (``to_row`` / ``from_row`` / ``str``).

Evolution (AutoFormer's ``get_mutation`` / ``get_crossover``, per stage): :func:`mutate`
resamples each stage's depth and width with ``resample_prob`` (new blocks drawn at random, removed
blocks dropped from the end) and each block's heads, MLP ratio and window with ``mutation_prob``;
:func:`crossover` takes each gene from one of two :func:`compatible` parents (same per-stage
depths) at random.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..space import SpaceError
from .space import SwinSpace, SwinSubnet

if TYPE_CHECKING:
    import optuna

__all__ = ["compatible", "crossover", "from_params", "mutate", "suggest", "to_params"]

_STAGE_KEY = re.compile(r"^s(\d+)\.")


def _block_key(stage: int, block: int, name: str) -> str:
    return f"s{stage}.b{block}.{name}"


def suggest(trial: optuna.trial.BaseTrial, space: SwinSpace) -> SwinSubnet:
    """Define-by-run: per stage its depth and width, then heads, MLP ratio and window per active
    block (see the module docstring for the names)."""
    embed_dim, depth, heads, ratios, windows = [], [], [], [], []
    for s in range(space.num_stages):
        d = trial.suggest_categorical(f"s{s}.depth", space.depth[s])
        depth.append(d)
        embed_dim.append(trial.suggest_categorical(f"s{s}.embed_dim", space.embed_dim[s]))
        h, r, w = [], [], []
        for j in range(d):
            h.append(trial.suggest_categorical(_block_key(s, j, "num_heads"), space.num_heads[s]))
            r.append(trial.suggest_categorical(_block_key(s, j, "mlp_ratio"), space.mlp_ratio[s]))
            w.append(
                trial.suggest_categorical(_block_key(s, j, "window_size"), space.window_size[s])
            )
        heads.append(tuple(h))
        ratios.append(tuple(r))
        windows.append(tuple(w))
    return SwinSubnet(tuple(embed_dim), tuple(depth), tuple(heads), tuple(ratios), tuple(windows))


def to_params(subnet: SwinSubnet) -> dict[str, Any]:
    """The trial parameters that :func:`suggest` gives for ``subnet`` (for ``enqueue_trial``)."""
    params: dict[str, Any] = {}
    for s in range(subnet.num_stages):
        params[f"s{s}.depth"] = subnet.depth[s]
        params[f"s{s}.embed_dim"] = subnet.embed_dim[s]
        for j, (h, r, w) in enumerate(subnet.blocks(s)):
            params[_block_key(s, j, "num_heads")] = h
            params[_block_key(s, j, "mlp_ratio")] = r
            params[_block_key(s, j, "window_size")] = w
    return params


def from_params(params: Mapping[str, Any]) -> SwinSubnet | None:
    """The subnet a trial's parameters describe, or None if they are incomplete or malformed.

    The stages are ``s0, s1, ...`` up to the first without a depth; a parameter of a later stage
    makes them malformed. Parameters not named ``s<k>.<...>`` are ignored.
    """
    n = 0
    while f"s{n}.depth" in params:
        n += 1
    if n == 0:
        return None
    if any(int(m.group(1)) >= n for k in params if (m := _STAGE_KEY.match(str(k)))):
        return None
    try:
        embed_dim, depth, heads, ratios, windows = [], [], [], [], []
        for s in range(n):
            d = int(params[f"s{s}.depth"])
            depth.append(d)
            embed_dim.append(int(params[f"s{s}.embed_dim"]))
            heads.append(tuple(int(params[_block_key(s, j, "num_heads")]) for j in range(d)))
            ratios.append(tuple(float(params[_block_key(s, j, "mlp_ratio")]) for j in range(d)))
            windows.append(tuple(int(params[_block_key(s, j, "window_size")]) for j in range(d)))
        return SwinSubnet(
            tuple(embed_dim), tuple(depth), tuple(heads), tuple(ratios), tuple(windows)
        )
    except (KeyError, TypeError, ValueError):  # SpaceError is a ValueError
        return None


def mutate(
    space: SwinSpace,
    parent: SwinSubnet,
    rng: random.Random,
    *,
    mutation_prob: float,
    resample_prob: float,
) -> SwinSubnet:
    """AutoFormer's mutation, stage by stage: with ``resample_prob`` a new depth (added blocks
    drawn at random, removed ones dropped from the end); each block's MLP ratio, heads and window
    with ``mutation_prob``; with ``resample_prob`` a new width. The child is validated."""
    space.validate(parent)
    embed_dim, depth, heads, ratios, windows = [], [], [], [], []
    for s in range(space.num_stages):
        d = parent.depth[s]
        h, r, w = list(parent.num_heads[s]), list(parent.mlp_ratio[s]), list(parent.window_size[s])
        if rng.random() < resample_prob:
            new_depth = rng.choice(space.depth[s])
            for _ in range(d, new_depth):
                h.append(rng.choice(space.num_heads[s]))
                r.append(rng.choice(space.mlp_ratio[s]))
                w.append(rng.choice(space.window_size[s]))
            d, h, r, w = new_depth, h[:new_depth], r[:new_depth], w[:new_depth]
        for values, choices in (
            (r, space.mlp_ratio[s]),
            (h, space.num_heads[s]),
            (w, space.window_size[s]),
        ):
            for j in range(d):
                if rng.random() < mutation_prob:
                    values[j] = rng.choice(choices)
        c = parent.embed_dim[s]
        if rng.random() < resample_prob:
            c = rng.choice(space.embed_dim[s])
        embed_dim.append(c)
        depth.append(d)
        heads.append(tuple(h))
        ratios.append(tuple(r))
        windows.append(tuple(w))
    child = SwinSubnet(tuple(embed_dim), tuple(depth), tuple(heads), tuple(ratios), tuple(windows))
    return space.validate(child)


def compatible(a: SwinSubnet, b: SwinSubnet) -> bool:
    """Whether :func:`crossover` can mix ``a`` and ``b``: the same depth in every stage."""
    return a.depth == b.depth


def crossover(
    space: SwinSpace, first: SwinSubnet, second: SwinSubnet, rng: random.Random
) -> SwinSubnet:
    """Gene-wise uniform crossover of two :func:`compatible` parents: each stage's width and each
    block's heads, MLP ratio and window from one parent or the other. The child is validated."""
    space.validate(first)
    space.validate(second)
    if not compatible(first, second):
        raise SpaceError(
            "crossover",
            [
                f"parents of different depths ({'-'.join(map(str, first.depth))} and "
                f"{'-'.join(map(str, second.depth))}): crossover needs equal per-stage depths"
            ],
        )

    def pick(a: tuple[Any, ...], b: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(rng.choice(pair) for pair in zip(a, b, strict=True))

    child = SwinSubnet(
        embed_dim=pick(first.embed_dim, second.embed_dim),
        depth=first.depth,
        num_heads=tuple(pick(a, b) for a, b in zip(first.num_heads, second.num_heads, strict=True)),
        mlp_ratio=tuple(pick(a, b) for a, b in zip(first.mlp_ratio, second.mlp_ratio, strict=True)),
        window_size=tuple(
            pick(a, b) for a, b in zip(first.window_size, second.window_size, strict=True)
        ),
    )
    return space.validate(child)
