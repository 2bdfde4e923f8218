"""AutoFormer's 2-D relative position encoding (``rel_pos: autoformer`` in a ViT space).

Patch tokens sit on a ``grid x grid`` lattice behind a CLS token. For a query token ``a`` and a
key token ``b`` (both patches) the row distance ``row(b) - row(a)`` and the column distance
``col(b) - col(a)`` are clamped to ``[-m, m]`` (``m = rel_pos_max_distance``) and shifted by
``m + 1``, giving indices 1 .. 2m+1; every pair that involves the CLS token gets index 0. Each
block has two pairs of learned tables of ``2m + 2`` rows and ``head_dim`` columns, shared by its
heads: one pair for keys, one for values. The embedding of a pair is the sum of its row-distance
row and its column-distance row, ``r[a, b] = row_table[row_index[a, b]] + col_table[col_index[a,
b]]`` (N x N x head_dim). Attention of one head, with ``s = head_dim ** -0.5``:

    p[a, :] = softmax_b( s * (q_a . k_b + q_a . rk[a, b]) )
    out_a   = sum_b p[a, b] * v_b  +  sum_b p[a, b] * rv[a, b]

The two relative terms are matrix products of N x N x head_dim per head, as AutoFormer computes
them: 2 N^2 Q multiply-accumulates per block on top of QK^T and AV (Q = heads x head_dim). The
value term needs the probabilities, so this attention is computed explicitly, not fused.

The tables' width is ``head_dim``, which no subnet changes: every subnet of a supernet uses the
whole tables (weight entanglement with nothing to slice).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

__all__ = ["RelativePosition2D", "relative_attention", "relative_position_index"]


@lru_cache(maxsize=16)
def relative_position_index(grid: int, max_distance: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into the row-distance and column-distance tables for the ``1 + grid**2`` tokens
    (CLS first): two (N, N) integer tensors on the CPU, query along the first dimension (computed
    once per geometry; do not modify them)."""
    position = torch.arange(grid * grid, device="cpu")
    rows, cols = position // grid, position % grid
    shift = max_distance + 1
    row_index = (rows[None, :] - rows[:, None]).clamp(-max_distance, max_distance) + shift
    col_index = (cols[None, :] - cols[:, None]).clamp(-max_distance, max_distance) + shift
    pad = torch.nn.functional.pad  # index 0: the pairs that involve the CLS token
    return pad(row_index, (1, 0, 1, 0)), pad(col_index, (1, 0, 1, 0))


class RelativePosition2D(nn.Module):
    """One pair of tables (row distance, column distance), ``2 * max_distance + 2`` rows each."""

    def __init__(self, grid: int, max_distance: int, head_dim: int) -> None:
        super().__init__()
        rows = 2 * max_distance + 2
        self.row_table = nn.Parameter(torch.empty(rows, head_dim))
        self.col_table = nn.Parameter(torch.empty(rows, head_dim))
        if not self.row_table.is_meta:  # a meta tensor has no values to initialise
            nn.init.trunc_normal_(self.row_table, std=0.02)
            nn.init.trunc_normal_(self.col_table, std=0.02)
        device = self.row_table.device  # the default device the module is built on
        row_index, col_index = relative_position_index(grid, max_distance)
        self.row_index: torch.Tensor
        self.col_index: torch.Tensor
        self.register_buffer("row_index", row_index.to(device, copy=True), persistent=False)
        self.register_buffer("col_index", col_index.to(device, copy=True), persistent=False)

    def sliced(self) -> dict[str, torch.Tensor]:
        """The weights a subnet uses: the whole tables, for every subnet."""
        return {"row_table": self.row_table, "col_table": self.col_table}

    def forward(self) -> torch.Tensor:
        """The embedding of every (query, key) pair: (N, N, head_dim)."""
        return self.row_table[self.row_index] + self.col_table[self.col_index]


def relative_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_k: torch.Tensor, rel_v: torch.Tensor
) -> torch.Tensor:
    """Attention with relative positions (see the module doc). ``q``, ``k``, ``v``: (B, heads,
    N, head_dim); ``rel_k``, ``rel_v``: (N, N, head_dim). Returns (B, heads, N, head_dim)."""
    scores = q @ k.transpose(-2, -1) + torch.einsum("bhqd,qkd->bhqk", q, rel_k)
    probs = (scores * q.shape[-1] ** -0.5).softmax(dim=-1)
    return probs @ v + torch.einsum("bhqk,qkd->bhqd", probs, rel_v)
