"""The analytic cost model of the Swin family: parameters, MACs and FLOPs, per component and stage.

Stage ``s`` works on an ``R x R`` map (``R = img / patch / 2**s``) of width ``C``. A block with
``h`` heads (``Q = h * head_dim``), MLP width ``M = int(C * r)`` and window ``w`` (clamped:
``w_e = min(w, R)``) pads the map to ``Rp = ceil(R / w_e) * w_e``, so it has ``nW = (Rp / w_e)²``
windows of ``A = w_e²`` tokens, ``Np = Rp²`` padded and ``N = R²`` real tokens:

    block MACs = Np*C*3Q (qkv) + nW*2*A²*Q (QK^T and AV) + Np*Q*C (proj) + 2*N*C*M (MLP)

Q/K/V, attention and the projection run on the padded windows, the MLP on the unpadded map.
Without padding the attention part is Swin's Omega(W-MSA) = 4NC² + 2A*N*C at Q = C. Add the patch
embedding ``(img/p)² * C_0 * in * p²``, each patch merging ``(R/2)² * 4C_in * C_out`` (``R`` the
map before it) and the head ``C_last * classes``.

Counting convention (that of ``torch.utils.flop_counter.FlopCounterMode``): every matmul and the
patch convolution at 2 FLOPs per multiply-accumulate; LayerNorm, GELU, softmax, the cyclic roll,
padding, the bias gather, the mask, additions, pooling and biases cost nothing. So ``flops ==
2 * macs`` exactly, for one image. ``params`` equals ``sum(p.numel())`` of the extracted model
exactly; the relative position bias of a block is its ``(2w_e - 1)² * h`` table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..cost import CostBreakdown
from ..space import mlp_hidden_dim
from .space import SwinSpace, SwinSubnet

__all__ = [
    "StageComplexity",
    "SwinComplexity",
    "block_costs",
    "breakdown",
]

#: Per-component fields that a stage carries (all but ``patch_embed`` and ``head``).
_STAGE_FIELDS = (
    "attn_proj_macs",
    "attn_matmul_macs",
    "mlp_macs",
    "merge_macs",
    "attn_proj_params",
    "mlp_params",
    "merge_params",
    "norm_params",
    "rel_pos_params",
)


@dataclass(frozen=True)
class StageComplexity(CostBreakdown):
    """The cost of one stage: its patch merging (none in stage 0) and its active blocks.

    ``norm_params`` counts the blocks' LayerNorms and the merging's LayerNorm(4C).
    """

    stage: int
    resolution: int
    embed_dim: int
    depth: int
    attn_proj_macs: int
    attn_matmul_macs: int
    mlp_macs: int
    merge_macs: int
    attn_proj_params: int
    mlp_params: int
    merge_params: int
    norm_params: int
    rel_pos_params: int


@dataclass(frozen=True)
class SwinComplexity(CostBreakdown):
    """Per-component cost of one Swin subnet for one image.

    ``*_macs``: multiply-accumulates; ``*_params``: parameter counts. ``patch_embed`` is the
    patch projection (its LayerNorm is in ``norm``), ``attn_proj`` the Q/K/V and output
    projections, ``attn_matmul`` the two token-mixing products inside windows, ``merge`` the
    patch-merging reductions (their LayerNorms are in ``norm``), ``norm`` every LayerNorm,
    ``rel_pos`` the relative position bias tables. ``stages`` holds the per-stage split.
    """

    patch_embed_macs: int
    attn_proj_macs: int
    attn_matmul_macs: int
    mlp_macs: int
    merge_macs: int
    head_macs: int
    patch_embed_params: int
    attn_proj_params: int
    mlp_params: int
    merge_params: int
    norm_params: int
    rel_pos_params: int
    head_params: int
    stages: tuple[StageComplexity, ...] = field(default=(), repr=False)

    def per_stage(self) -> list[dict[str, int]]:
        """One dict per stage (merging + blocks; the patch embedding, the final norm and the
        head belong to no stage): its components and its ``macs``, ``flops``, ``params``."""
        return [stage.to_dict() for stage in self.stages]


def block_costs(
    resolution: int, dim: int, num_heads: int, head_dim: int, mlp_hidden: int, window: int
) -> dict[str, int]:
    """MACs and params of one block (see the module docstring), with its padded geometry."""
    w = min(window, resolution)
    padded = math.ceil(resolution / w) * w
    n, n_padded, n_windows, area = resolution**2, padded**2, (padded // w) ** 2, w * w
    q = num_heads * head_dim
    return {
        "attn_proj_macs": n_padded * dim * 3 * q + n_padded * q * dim,
        "attn_matmul_macs": n_windows * 2 * area * area * q,
        "mlp_macs": 2 * n * dim * mlp_hidden,
        "attn_proj_params": (dim * 3 * q + 3 * q) + (q * dim + dim),
        "mlp_params": (dim * mlp_hidden + mlp_hidden) + (mlp_hidden * dim + dim),
        "norm_params": 4 * dim,
        "rel_pos_params": (2 * w - 1) ** 2 * num_heads,
        "padded": padded,
        "windows": n_windows,
    }


def breakdown(space: SwinSpace, subnet: SwinSubnet) -> SwinComplexity:
    """The per-component cost of ``subnet`` (validated against ``space``) for one image."""
    space.validate(subnet)
    c = subnet.embed_dim
    grid = space.grid_size
    kernel = space.in_chans * space.patch_size**2
    stages = []
    for s in range(space.num_stages):
        resolution = space.stage_resolution(s)
        parts: dict[str, Any] = dict.fromkeys(_STAGE_FIELDS, 0)
        if s:
            parts["merge_macs"] = resolution**2 * 4 * c[s - 1] * c[s]
            parts["merge_params"] = 4 * c[s - 1] * c[s]
            parts["norm_params"] += 8 * c[s - 1]
        for heads, ratio, window in subnet.blocks(s):
            hidden = mlp_hidden_dim(c[s], ratio)
            costs = block_costs(resolution, c[s], heads, space.head_dim, hidden, window)
            for name in _STAGE_FIELDS:
                parts[name] += costs.get(name, 0)
        stages.append(
            StageComplexity(
                stage=s, resolution=resolution, embed_dim=c[s], depth=subnet.depth[s], **parts
            )
        )
    totals = {name: sum(getattr(st, name) for st in stages) for name in _STAGE_FIELDS}
    totals["norm_params"] += 2 * c[0] + 2 * c[-1]  # the patch embedding's and the final norm
    return SwinComplexity(
        patch_embed_macs=grid**2 * c[0] * kernel,
        head_macs=c[-1] * space.num_classes,
        patch_embed_params=c[0] * kernel + c[0],
        head_params=c[-1] * space.num_classes + space.num_classes,
        stages=tuple(stages),
        **totals,
    )
