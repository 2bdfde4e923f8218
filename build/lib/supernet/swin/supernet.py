"""The weight-sharing Swin supernet: one set of weights, any subnet of a :class:`SwinSpace`.

>>> space = SwinSpace.preset("swin_digits")
>>> net = SwinSupernet(space)
>>> logits = net(images, space.largest())  # the subnet is an argument, never module state
>>> model = net.extract(space.smallest())  # a standalone SwinTransformer, copied weights

Weight entanglement, per stage ``s`` (largest choices ``C_max``, ``h_max``, ``M_max``, ``W``):

- patch embedding, Q/K/V, output projection, MLP, LayerNorms and head: the shared elastic
  layers of :mod:`supernet.layers` (leading slices; Q, K and V of head ``h`` keep their rows);
- the relative position bias of each block is stored for the stage's largest effective window
  ``W`` as a ``(2W-1)², h_max`` table (timm's layout, rows ``(dy + W-1) * (2W-1) + (dx + W-1)``).
  A window ``w`` takes the centre crop ``[W-w : W+w-1]`` on both axes of the 2-D table and the
  first ``h`` heads: offset (dy, dx) reads the same entry at every window size; no interpolation;
- patch merging keeps timm's order (the four 2x2 neighbours concatenated, LayerNorm(4C),
  bias-free linear 4C -> C'); a narrower input width slices each of the four C-blocks of the
  LayerNorm and of the reduction's input axis, not the first rows of the 4C axis.

Masks and relative-position indices carry no weights: they are built once per (map, window,
shift, device, dtype) and kept in plain dicts, outside the state dict. Attention uses explicit
matmuls, as timm's Swin does, so ``FlopCounterMode`` counts it on every backend.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ElasticLayerNorm, ElasticLinear, ElasticPatchEmbed, ElasticQKV, drop_path
from ..model import Supernet
from .model import (
    LN_EPS,
    merge_neighbours,
    relative_position_bias,
    relative_position_index,
    shifted_window_attention,
    shifted_window_mask,
    window_attention,
    window_shift,
)
from .space import SwinSpace, SwinSubnet

__all__ = ["ElasticPatchMerging", "ElasticSwinBlock", "SwinSupernet", "WindowCache"]

Params = dict[str, torch.Tensor]


class WindowCache:
    """Attention masks and relative-position indices, built once per geometry and device.

    Plain dicts (no weights, nothing in the state dict); a new device or dtype adds entries.
    """

    def __init__(self) -> None:
        self.masks: dict[tuple[int, int, int, int, torch.device, torch.dtype], torch.Tensor] = {}
        self.indices: dict[tuple[int, torch.device], torch.Tensor] = {}

    def mask(
        self, height: int, width: int, window: int, shift: int, like: torch.Tensor
    ) -> torch.Tensor | None:
        """The SW-MSA mask of a (padded) ``height x width`` map, or None when nothing shifts."""
        if not shift:
            return None
        key = (height, width, window, shift, like.device, like.dtype)
        mask = self.masks.get(key)
        if mask is None:
            mask = shifted_window_mask(height, width, window, shift, like.device, like.dtype)
            self.masks[key] = mask
        return mask

    def index(self, window: int, device: torch.device) -> torch.Tensor:
        key = (window, device)
        index = self.indices.get(key)
        if index is None:
            index = relative_position_index(window, device)
            self.indices[key] = index
        return index


class ElasticSwinBlock(nn.Module):
    """A Swin block with elastic width, heads, MLP width and window (see the module docstring)."""

    def __init__(
        self,
        max_dim: int,
        max_heads: int,
        head_dim: int,
        max_mlp: int,
        max_window: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.max_heads = max_heads
        self.max_window = max_window
        self.norm1 = ElasticLayerNorm(max_dim, eps=LN_EPS)
        self.qkv = ElasticQKV(max_dim, max_heads, head_dim)
        self.proj = ElasticLinear(max_heads * head_dim, max_dim)
        self.relative_position_bias_table = nn.Parameter(
            nn.init.trunc_normal_(torch.empty((2 * max_window - 1) ** 2, max_heads), std=0.02)
        )
        self.norm2 = ElasticLayerNorm(max_dim, eps=LN_EPS)
        self.fc1 = ElasticLinear(max_dim, max_mlp)
        self.fc2 = ElasticLinear(max_mlp, max_dim)
        self.drop_path = drop_path

    def bias_table(self, window: int, num_heads: int) -> torch.Tensor:
        """The ``(2w-1)², heads`` table of window ``w``: the centre crop of the stored table."""
        big = self.max_window
        if not 1 <= window <= big:
            raise ValueError(f"window {window} is outside this block's 1..{big}")
        side = 2 * big - 1
        crop = self.relative_position_bias_table.view(side, side, self.max_heads)[
            big - window : big + window - 1, big - window : big + window - 1, :num_heads
        ]
        return crop.reshape((2 * window - 1) ** 2, num_heads)

    def sliced(self, dim: int, num_heads: int, mlp_hidden: int, window: int) -> Params:
        """This block's weights for the given sizes, named as in :class:`~.model.SwinBlock`."""
        inner = num_heads * self.head_dim
        parts: dict[str, Params] = {
            "norm1": self.norm1.sliced(dim),
            "attn.qkv": self.qkv.sliced(dim, 3 * inner),
            "attn.proj": self.proj.sliced(inner, dim),
            "norm2": self.norm2.sliced(dim),
            "mlp.fc1": self.fc1.sliced(dim, mlp_hidden),
            "mlp.fc2": self.fc2.sliced(mlp_hidden, dim),
        }
        state = {f"{name}.{key}": t for name, p in parts.items() for key, t in p.items()}
        state["attn.relative_position_bias_table"] = self.bias_table(window, num_heads)
        return state

    def forward(
        self,
        x: torch.Tensor,
        num_heads: int,
        mlp_hidden: int,
        window: int,
        shift: int,
        cache: WindowCache,
    ) -> torch.Tensor:
        """``x``: a (B, R, R, C) map; ``window`` already clamped to R, ``shift`` from
        :func:`~.model.window_shift`."""
        _, h, w, dim = x.shape
        inner = num_heads * self.head_dim
        bias = relative_position_bias(
            self.bias_table(window, num_heads), cache.index(window, x.device)
        )
        hp, wp = math.ceil(h / window) * window, math.ceil(w / window) * window
        mask = cache.mask(hp, wp, window, shift, x)

        def attend(windows: torch.Tensor) -> torch.Tensor:
            qkv = self.qkv(windows, 3 * inner)
            return self.proj(window_attention(qkv, num_heads, self.head_dim, bias, mask), dim)

        y = shifted_window_attention(self.norm1(x), window, shift, attend)
        x = x + drop_path(y, self.drop_path, self.training)
        y = self.fc2(F.gelu(self.fc1(self.norm2(x), mlp_hidden)), dim)
        return x + drop_path(y, self.drop_path, self.training)


class ElasticPatchMerging(nn.Module):
    """Patch merging with elastic input and output widths.

    The LayerNorm(4C) and the reduction are stored for ``max_in``; a width ``c_in`` takes the
    first ``c_in`` channels of each of the four neighbour blocks (viewing the 4C axis as
    ``(4, max_in)``), so a channel of a neighbour keeps its weights at every width.
    """

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.max_in = max_in
        self.norm = ElasticLayerNorm(4 * max_in, eps=LN_EPS)
        self.reduction = nn.Linear(4 * max_in, max_out, bias=False)
        nn.init.trunc_normal_(self.reduction.weight, std=0.02)

    def sliced(self, in_dim: int, out_dim: int) -> Params:
        """Named as in :class:`~.model.PatchMerging` (``norm.*``, ``reduction.weight``)."""
        m = self.max_in
        weight = self.reduction.weight.view(-1, 4, m)[:out_dim, :, :in_dim]
        return {
            "norm.weight": self.norm.weight.view(4, m)[:, :in_dim].reshape(4 * in_dim),
            "norm.bias": self.norm.bias.view(4, m)[:, :in_dim].reshape(4 * in_dim),
            "reduction.weight": weight.reshape(out_dim, 4 * in_dim),
        }

    def forward(self, x: torch.Tensor, out_dim: int) -> torch.Tensor:
        in_dim = x.shape[-1]
        p = self.sliced(in_dim, out_dim)
        x = F.layer_norm(
            merge_neighbours(x), (4 * in_dim,), p["norm.weight"], p["norm.bias"], self.norm.eps
        )
        return F.linear(x, p["reduction.weight"])


class ElasticSwinStage(nn.Module):
    """A stage's patch merging (None in stage 0) and its ``max_depth`` blocks."""

    def __init__(self, downsample: ElasticPatchMerging | None, blocks: list[ElasticSwinBlock]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)


class SwinSupernet(Supernet):
    """The Swin supernet of a :class:`SwinSpace` (see the module docstring)."""

    def __init__(self, space: SwinSpace, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not isinstance(space, SwinSpace):
            raise TypeError(f"expected a SwinSpace, got {type(space).__name__}")
        self.space = space
        s = space
        self.patch_embed = ElasticPatchEmbed(s.patch_size, s.in_chans, s.max_embed_dim(0))
        self.patch_norm = ElasticLayerNorm(s.max_embed_dim(0), eps=LN_EPS)
        total = sum(s.max_depth(i) for i in range(s.num_stages))
        stages, first = [], 0
        for i in range(s.num_stages):
            downsample = (
                ElasticPatchMerging(s.max_embed_dim(i - 1), s.max_embed_dim(i)) if i else None
            )
            blocks = [
                ElasticSwinBlock(
                    s.max_embed_dim(i),
                    s.max_num_heads(i),
                    s.head_dim,
                    s.max_mlp_hidden_dim(i),
                    s.max_window(i),
                    drop_path_rate * (first + j) / max(total - 1, 1),
                )
                for j in range(s.max_depth(i))
            ]
            first += s.max_depth(i)
            stages.append(ElasticSwinStage(downsample, blocks))
        self.layers = nn.ModuleList(stages)
        self.norm = ElasticLayerNorm(s.max_embed_dim(s.num_stages - 1), eps=LN_EPS)
        self.head = ElasticLinear(s.max_embed_dim(s.num_stages - 1), s.num_classes)
        self._windows = WindowCache()

    # -- forward ---------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, subnet: SwinSubnet) -> torch.Tensor:
        """The last stage's normalised (B, R, R, C) map of ``subnet``."""
        space = self.space
        space.validate(subnet)
        self.check_input(x)
        grid = space.grid_size
        x = self.patch_embed(x, subnet.embed_dim[0])
        x = self.patch_norm(x.reshape(x.shape[0], grid, grid, -1))
        hidden = subnet.mlp_hidden_dims()
        for i, stage in enumerate(self.layers):
            if stage.downsample is not None:
                x = stage.downsample(x, subnet.embed_dim[i])
            resolution = space.stage_resolution(i)
            for j, (heads, _, window) in enumerate(subnet.blocks(i)):
                window = min(window, resolution)
                shift = window_shift(resolution, window, j, space.shift)
                x = stage.blocks[j](x, heads, hidden[i][j], window, shift, self._windows)
        return self.norm(x)

    def forward(self, x: torch.Tensor, subnet: SwinSubnet) -> torch.Tensor:
        """Logits of ``subnet`` for images ``x`` of shape (B, in_chans, img_size, img_size)."""
        x = self.forward_features(x, subnet).mean(dim=(1, 2))
        return self.head(x, self.space.num_classes)

    def no_weight_decay(self) -> set[str]:
        """Parameter names to exempt from weight decay: every relative position bias table."""
        return {n for n, _ in self.named_parameters() if n.endswith("relative_position_bias_table")}

    # -- extraction ------------------------------------------------------------------------------
    def subnet_state_dict(self, subnet: SwinSubnet) -> dict[str, torch.Tensor]:
        """The subnet's slices of the supernet weights, keyed as in the standalone model.

        Leading slices are views of the supernet's storage; the Q/K/V, bias-table crop and
        patch-merging slices are gathered copies (still differentiable). Clone them to keep them.
        """
        self.space.validate(subnet)
        c = subnet.embed_dim
        state: dict[str, torch.Tensor] = {
            f"patch_embed.{k}": v for k, v in self.patch_embed.sliced(c[0]).items()
        }
        state.update({f"patch_embed.norm.{k}": v for k, v in self.patch_norm.sliced(c[0]).items()})
        hidden = subnet.mlp_hidden_dims()
        for i, stage in enumerate(self.layers):
            if stage.downsample is not None:
                for k, v in stage.downsample.sliced(c[i - 1], c[i]).items():
                    state[f"layers.{i}.downsample.{k}"] = v
            for j, (heads, _, window) in enumerate(subnet.blocks(i)):
                sliced = stage.blocks[j].sliced(c[i], heads, hidden[i][j], window)
                for k, v in sliced.items():
                    state[f"layers.{i}.blocks.{j}.{k}"] = v
        state.update({f"norm.{k}": v for k, v in self.norm.sliced(c[-1]).items()})
        state.update(
            {f"head.fc.{k}": v for k, v in self.head.sliced(c[-1], self.space.num_classes).items()}
        )
        return state
