"""Latency features of a Swin subnet, and a designed sample of subnets to measure.

As for the ViT (``search/latency/features.py``), a forward pass costs time for its matrix
products (proportional to MACs, with an efficiency that differs between the attention projections,
the window products, the MLP and the patch merging), for its element-wise and memory-bound work
(each proportional to the elements it touches: LayerNorms, residuals, GELU, Q/K/V reshapes, and
Swin's own copies: window partition and reverse, cyclic rolls, padding and crop, the merging's 2x2
gather) and a fixed cost per operator launched. Each feature is one such term for a whole batch;
a latency profile weighs them with non-negative coefficients.

Folded terms: the scores of a block (bias add, mask add, softmax over ``h * nW * A²`` entries) are
proportional to its window MACs ``2 * nW * A² * h * head_dim`` (``head_dim`` is fixed), so
``attn_matmul_macs`` carries them; the number of stages and mergings is fixed, so the intercept
carries their launches; the window partition and reverse copy the ``N x C`` map as the
LayerNorms and residual adds do, so ``block_elems`` carries them (and ``pad_elems`` the padding's
extra).

:func:`designed_sample` spans the cost range as ``search/latency/design.py`` does for the ViT:
the smallest and the largest subnet, then subnets whose stage widths, depths, heads, MLP ratios
and windows are drawn around five *levels* stratified over [0, 1] independently of each other
(0: every choice at its smallest, 1: at its largest), so each cost term varies on its own.
"""

from __future__ import annotations

import random

from ..design import pick_at_level, stratified_levels
from ..space import mlp_hidden_dim
from .complexity import block_costs, breakdown
from .model import window_shift
from .space import SwinSpace, SwinSubnet

__all__ = ["FEATURES", "designed_sample", "latency_features"]

#: Feature names, in a fixed order, with what each one counts.
FEATURES: dict[str, str] = {
    "intercept": "1 per forward: dispatch, stem, mergings' and head's launches, input and output",
    "blocks": "active blocks: fixed cost of each block's ~25 operator launches",
    "shifted_blocks": "blocks with a cyclic shift: two rolls and the mask add launched",
    "embed_macs": "batch x (patch projection + head) MACs",
    "attn_proj_macs": "batch x Q/K/V and output projection MACs (4 Np C Q per block)",
    "attn_matmul_macs": "batch x window QK^T and AV MACs (2 nW A^2 Q per block), softmax included",
    "mlp_macs": "batch x MLP MACs (2 N C M per block)",
    "merge_macs": "batch x patch-merging MACs ((R/2)^2 4 C_in C_out per merging)",
    "block_elems": "batch x N x C per block: LayerNorms, residual adds, window partition/reverse",
    "attn_elems": "batch x Np x Q per block: Q/K/V reshapes and the attention output copy",
    "mlp_elems": "batch x N x M per block: the GELU and the hidden activations",
    "shift_elems": "batch x Np x C per shifted block: the two cyclic rolls",
    "pad_elems": "batch x Np x C per padded block: the padding, the crop back, larger windows",
    "merge_elems": "batch x N_in x C_in per merging: the 2x2 gather and LayerNorm(4C)",
    "bias_elems": "heads x A^2 per block: the relative-position bias gather (batch-independent)",
}


def latency_features(space: SwinSpace, subnet: SwinSubnet, batch_size: int) -> dict[str, float]:
    """The :data:`FEATURES` of ``subnet`` (validated against ``space``) for a batch."""
    cost = breakdown(space, subnet)
    b = batch_size
    f = dict.fromkeys(FEATURES, 0.0)
    f["intercept"] = 1.0
    f["embed_macs"] = float(b * (cost.patch_embed_macs + cost.head_macs))
    for name in ("attn_proj_macs", "attn_matmul_macs", "mlp_macs", "merge_macs"):
        f[name] = float(b * getattr(cost, name))
    for s in range(space.num_stages):
        r, c = space.stage_resolution(s), subnet.embed_dim[s]
        if s:
            f["merge_elems"] += b * (2 * r) ** 2 * subnet.embed_dim[s - 1]
        for j, (heads, ratio, window) in enumerate(subnet.blocks(s)):
            hidden = mlp_hidden_dim(c, ratio)
            geo = block_costs(r, c, heads, space.head_dim, hidden, window)
            n_padded, w = geo["padded"] ** 2, min(window, r)
            f["blocks"] += 1
            f["block_elems"] += b * r * r * c
            f["attn_elems"] += b * n_padded * heads * space.head_dim
            f["mlp_elems"] += b * r * r * hidden
            f["bias_elems"] += heads * w**4
            if window_shift(r, w, j, space.shift):
                f["shifted_blocks"] += 1
                f["shift_elems"] += b * n_padded * c
            if geo["padded"] != r:
                f["pad_elems"] += b * n_padded * c
    return {k: float(v) for k, v in f.items()}


def _leveled(space: SwinSpace, levels: dict[str, float], rng: random.Random) -> SwinSubnet:
    embed_dim, depth, heads, ratios, windows = [], [], [], [], []
    for s in range(space.num_stages):
        embed_dim.append(pick_at_level(space.embed_dim[s], levels["embed_dim"], rng))
        d = int(pick_at_level(space.depth[s], levels["depth"], rng))  # type: ignore[call-overload]
        depth.append(d)
        heads.append(
            tuple(pick_at_level(space.num_heads[s], levels["num_heads"], rng) for _ in range(d))
        )
        ratios.append(
            tuple(pick_at_level(space.mlp_ratio[s], levels["mlp_ratio"], rng) for _ in range(d))
        )
        windows.append(
            tuple(pick_at_level(space.window_size[s], levels["window_size"], rng) for _ in range(d))
        )
    return SwinSubnet(tuple(embed_dim), tuple(depth), tuple(heads), tuple(ratios), tuple(windows))  # type: ignore[arg-type]


def designed_sample(space: SwinSpace, n: int, rng: random.Random) -> list[SwinSubnet]:
    """``n`` distinct subnets spanning ``space``'s cost range (see the module docstring; the
    caller checks that the space holds that many)."""
    if not 2 <= n <= space.count_subnets():
        raise ValueError(f"cannot draw {n} distinct subnets from this space")
    picks = {space.smallest(): None, space.largest(): None}  # a dict keeps insertion order
    dims = ("embed_dim", "depth", "num_heads", "mlp_ratio", "window_size")
    attempts = 0
    while len(picks) < n:
        todo = n - len(picks)
        columns = {dim: stratified_levels(todo, rng) for dim in dims}
        for i in range(todo):
            picks.setdefault(_leveled(space, {d: columns[d][i] for d in dims}, rng), None)
        attempts += 1
        if attempts > 100:  # a small space whose extremes repeat: fill up at random
            while len(picks) < n:
                picks.setdefault(space.sample(rng), None)
    return list(picks)[:n]
