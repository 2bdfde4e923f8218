"""The ViT family's analytic cost model: parameters, MACs and FLOPs of a subnet, per component.

The MSA complexity model of the AutoFormer paper, Omega(MSA) = 4ND^2 + 2N^2D, extended to the whole
network and to per-layer head counts (Q/K/V width ``Q = heads * head_dim``, not necessarily D) and
MLP widths ``M``. For one block over N tokens:

    MACs = N*D*3Q (qkv)  +  N^2*Q (Q K^T)  +  N^2*Q (A V)  +  N*Q*D (proj)  +  2*N*D*M (MLP)

which is 4ND^2 + 2N^2D + 8ND^2 when Q = D and M = 4D. Add the patch projection
(P * D * C * p^2 for P patches of p x p pixels) and the head (D * classes). AutoFormer's relative
positions (``rel_pos: autoformer``) add, per block, the products of the queries with the key
tables' pair embeddings and of the attention probabilities with the value tables' (N^2 * Q each,
computed as AutoFormer computes them) and four tables of (2 * max_distance + 2) x head_dim
parameters.

Counting convention (that of ``torch.utils.flop_counter.FlopCounterMode``): every matmul and the
patch convolution at 2 FLOPs per multiply-accumulate; LayerNorm, GELU, softmax, additions and
biases cost nothing. So ``flops == 2 * macs`` exactly, for one image. Papers' "FLOPs" are usually
MACs. ``params`` equals ``sum(p.numel() for p in extracted_model.parameters())`` exactly (a
sinusoidal position embedding is a buffer, not a parameter).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..cost import CostBreakdown
from .space import SearchSpace, SubnetConfig

__all__ = ["Complexity", "breakdown"]


@dataclass(frozen=True)
class Complexity(CostBreakdown):
    """Per-component cost of one subnet for one image.

    ``*_macs``: multiply-accumulates; ``*_params``: parameter counts. ``attn_proj`` is the Q/K/V
    and output projections, ``attn_matmul`` the two token-mixing products (QK^T and AV), ``tokens``
    the CLS token and a learned position embedding, ``norm`` every LayerNorm, ``rel_pos`` the
    relative-position products and tables (0 without them).
    """

    patch_embed_macs: int
    attn_proj_macs: int
    attn_matmul_macs: int
    mlp_macs: int
    head_macs: int
    patch_embed_params: int
    tokens_params: int
    attn_proj_params: int
    mlp_params: int
    norm_params: int
    head_params: int
    rel_pos_macs: int = 0
    rel_pos_params: int = 0


def breakdown(space: SearchSpace, subnet: SubnetConfig) -> Complexity:
    """The per-component cost of ``subnet`` (validated against ``space``) for one image."""
    space.validate(subnet)
    d = subnet.embed_dim
    n = space.num_tokens
    p = space.num_patches
    kernel = space.in_chans * space.patch_size**2
    qkv_widths = [h * space.head_dim for h in subnet.num_heads]
    mlp_widths = subnet.mlp_hidden_dims()

    attn_proj_macs = sum(n * d * 3 * q + n * q * d for q in qkv_widths)
    attn_matmul_macs = sum(2 * n * n * q for q in qkv_widths)
    mlp_macs = sum(2 * n * d * m for m in mlp_widths)
    relative = space.rel_pos == "autoformer"
    rel_pos_macs = attn_matmul_macs if relative else 0  # q.rk and p.rv: N^2 Q each, per block
    table = space.rel_pos_table_rows * space.head_dim  # 0 without relative positions
    return Complexity(
        patch_embed_macs=p * d * kernel,
        attn_proj_macs=attn_proj_macs,
        attn_matmul_macs=attn_matmul_macs,
        mlp_macs=mlp_macs,
        head_macs=d * space.num_classes,
        patch_embed_params=d * kernel + d,
        tokens_params=(d if space.has_cls_token else 0)
        + (n * d if space.pos_embed == "learned" else 0),
        attn_proj_params=sum((d * 3 * q + 3 * q) + (q * d + d) for q in qkv_widths),
        mlp_params=sum((d * m + m) + (m * d + d) for m in mlp_widths),
        norm_params=2 * d * (2 * subnet.depth + 1),
        head_params=d * space.num_classes + space.num_classes,
        rel_pos_macs=rel_pos_macs,
        rel_pos_params=4 * table * subnet.depth,
    )
