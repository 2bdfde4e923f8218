"""The ViT family's latency features, from the terms of the MSA complexity model, and the designed
sample of subnets a latency calibration measures.

A forward pass costs time for its matrix products (proportional to MACs, with an efficiency that
differs between the attention projections, the token-mixing products and the MLP), for its
element-wise and memory-bound work (LayerNorm, residual adds, GELU, the Q/K/V reshapes; each
proportional to the elements it touches) and a fixed cost per operator launched (per block, and
per call). Each feature is one such term for a whole batch; a latency profile weighs them with
non-negative coefficients (milliseconds per unit).

Within one space the token count N, head width and image geometry are fixed, so terms that
differ only by those are proportional and folded into one: the softmax over heads x N^2 scores is
counted by ``attn_matmul_macs`` (2 N^2 Q per block), and the CLS/position/final-norm work over
N x D elements by ``embed_macs`` (patch projection and head, both proportional to D).

AutoFormer's relative positions (``rel_pos: autoformer``) add per block two products of N^2 Q
MACs (queries times the key tables' pair embeddings, probabilities times the value tables'), the
explicit softmax and probabilities they need (heads x N^2 elements) and the gathering of the
pair embeddings (4 x N^2 x head_dim elements). The products and the softmax grow with Q as QK^T
and AV do, so ``attn_matmul_macs`` counts them (its MACs become 4 N^2 Q per block, which keeps the
MAC features summing to the cost model's MACs); the gathering is the same for every block of a
space, so ``blocks`` absorbs it. A profile is fitted per space, so these folds cost no accuracy.
"""

from __future__ import annotations

import itertools
import random

from ..design import pick_at_level, stratified_levels
from . import complexity
from .space import SearchSpace, SubnetConfig

__all__ = ["FEATURES", "designed_sample", "latency_features"]

#: Feature names, in the order of the latency design matrix's columns, with what each counts.
FEATURES: dict[str, str] = {
    "intercept": "1 per forward: dispatch, input and output handling",
    "blocks": "depth: fixed cost of each block's ~15 operator launches (and, with relative "
    "positions, its table gathers)",
    "embed_macs": "batch x (patch projection + head) MACs, proportional to D",
    "attn_proj_macs": "batch x Q/K/V and output projection MACs (4 N D Q per block)",
    "attn_matmul_macs": "batch x QK^T and AV MACs (2 N^2 Q per block), softmax included; "
    "with relative positions also their two products (2 N^2 Q more)",
    "mlp_macs": "batch x MLP MACs (2 N D M per block)",
    "block_elems": "batch x N x D per block: two LayerNorms and two residual adds",
    "attn_elems": "batch x N x Q per block: Q/K/V reshapes and the attention output copy",
    "mlp_elems": "batch x N x M per block: the GELU and the hidden activations",
}


def latency_features(space: SearchSpace, subnet: SubnetConfig, batch_size: int) -> dict[str, float]:
    """The :data:`FEATURES` of ``subnet`` (validated against ``space``) for a batch."""
    cost = complexity.breakdown(space, subnet)
    n, d, b = space.num_tokens, subnet.embed_dim, batch_size
    qkv = sum(h * space.head_dim for h in subnet.num_heads)
    hidden = sum(subnet.mlp_hidden_dims())
    return {
        "intercept": 1.0,
        "blocks": float(subnet.depth),
        "embed_macs": float(b * (cost.patch_embed_macs + cost.head_macs)),
        "attn_proj_macs": float(b * cost.attn_proj_macs),
        "attn_matmul_macs": float(b * (cost.attn_matmul_macs + cost.rel_pos_macs)),
        "mlp_macs": float(b * cost.mlp_macs),
        "block_elems": float(b * n * d * subnet.depth),
        "attn_elems": float(b * n * qkv),
        "mlp_elems": float(b * n * hidden),
    }


def designed_sample(space: SearchSpace, n: int, rng: random.Random) -> list[SubnetConfig]:
    """``n`` distinct subnets spanning ``space``'s cost range (the caller checks that the space
    holds that many): the smallest and the largest subnet, every (embed_dim, depth) cell in turn,
    and per-layer heads and MLP ratios drawn around two *levels* stratified over [0, 1]
    independently of each other (level 0: all layers at the smallest choice, level 1: all at the
    largest, in between: mixed layers), so attention and MLP costs vary independently and the fit
    can tell them apart."""
    if not 2 <= n <= space.count_subnets():
        raise ValueError(f"cannot draw {n} distinct subnets from this space")
    picks = {space.smallest(): None, space.largest(): None}  # a dict keeps insertion order
    cells = list(itertools.product(space.embed_dim, space.depth))
    attempts = 0
    while len(picks) < n:
        todo = n - len(picks)
        heads_levels = stratified_levels(todo, rng)
        mlp_levels = stratified_levels(todo, rng)
        rng.shuffle(cells)
        for i in range(todo):
            embed_dim, depth = cells[i % len(cells)]
            subnet = SubnetConfig(
                embed_dim=embed_dim,
                depth=depth,
                num_heads=tuple(
                    int(pick_at_level(space.num_heads, heads_levels[i], rng)) for _ in range(depth)
                ),
                mlp_ratio=tuple(
                    pick_at_level(space.mlp_ratio, mlp_levels[i], rng) for _ in range(depth)
                ),
            )
            picks.setdefault(subnet, None)
        attempts += 1
        if attempts > 100:  # a small space whose extremes repeat: fill up at random
            while len(picks) < n:
                picks.setdefault(space.sample(rng), None)
    return list(picks)[:n]
