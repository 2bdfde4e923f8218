"""Latency features of a subnet, from the terms of the MSA complexity model.

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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet import SearchSpace, SubnetConfig, complexity

__all__ = ["FEATURES", "feature_matrix", "latency_features"]

#: Feature names, in the order of :func:`feature_matrix`'s columns, with what each one counts.
FEATURES: dict[str, str] = {
    "intercept": "1 per forward: dispatch, input and output handling",
    "blocks": "depth: fixed cost of each block's ~15 operator launches",
    "embed_macs": "batch x (patch projection + head) MACs, proportional to D",
    "attn_proj_macs": "batch x Q/K/V and output projection MACs (4 N D Q per block)",
    "attn_matmul_macs": "batch x QK^T and AV MACs (2 N^2 Q per block), softmax included",
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
        "attn_matmul_macs": float(b * cost.attn_matmul_macs),
        "mlp_macs": float(b * cost.mlp_macs),
        "block_elems": float(b * n * d * subnet.depth),
        "attn_elems": float(b * n * qkv),
        "mlp_elems": float(b * n * hidden),
    }


def feature_matrix(
    space: SearchSpace, subnets: Sequence[SubnetConfig], batch_size: int
) -> np.ndarray:
    """One row of :data:`FEATURES` per subnet, shape ``(len(subnets), len(FEATURES))``."""
    rows = [latency_features(space, s, batch_size) for s in subnets]
    return np.array([[row[name] for name in FEATURES] for row in rows], dtype=float).reshape(
        len(rows), len(FEATURES)
    )
