"""The standalone Swin Transformer: what a Swin subnet becomes once extracted or exported.

Plain PyTorch with per-stage widths and per-block heads, MLP widths and windows; it needs no
supernet to load or run. Its state-dict keys are those of timm 1.0's ``SwinTransformer``
(``patch_embed.proj``/``.norm``, ``layers.i.downsample.{norm,reduction}`` for ``i >= 1``,
``layers.i.blocks.j.{norm1,attn.qkv,attn.proj,attn.relative_position_bias_table,norm2,mlp.fc1,
mlp.fc2}``, ``norm``, ``head.fc``), with timm's non-persistent buffers
(``attn.relative_position_index`` and the shifted blocks' ``attn_mask``). :meth:`timm_kwargs`
gives the arguments of timm's model when timm can express the subnet.

Semantics (timm's unless said): patch embedding conv + LayerNorm; per block
``x + W-MSA(LN(x))`` then ``x + MLP(LN(x))`` on a ``R x R`` map split into ``w x w`` windows with
a relative position bias; odd blocks shift the windows by ``w // 2`` (a cyclic roll and a -100
mask) unless the window covers the map; a window larger than the map is clamped to it; patch
merging concatenates the 2x2 neighbours at offsets (0,0), (1,0), (0,1), (1,1), applies
LayerNorm(4C) and a bias-free linear 4C -> C'; mean pooling, final LayerNorm, linear head.
LayerNorm eps is 1e-5 throughout.

One deliberate difference from timm: a map that is not a multiple of its window is padded
*before* the cyclic shift (as torchvision does), and the shift mask is built on the padded map,
so shifted windows never mix tokens across the wrap-around. timm rolls first and pads after
(pytorch-image-models#2438), so padded *shifted* blocks differ from timm; unpadded blocks and
padded unshifted blocks match it exactly. Padded tokens are not masked in W-MSA (as in timm and
torchvision): they take part in attention as zero-input tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..common.errors import UserError
from ..layers import drop_path
from ..vit.model import Mlp, init_weights
from .space import Shift, SwinSpace, SwinSubnet

__all__ = [
    "LN_EPS",
    "MASK_VALUE",
    "PatchEmbed",
    "PatchMerging",
    "SwinBlock",
    "SwinHead",
    "SwinStage",
    "SwinTransformer",
    "WindowAttention",
    "merge_neighbours",
    "relative_position_bias",
    "relative_position_index",
    "shifted_window_attention",
    "shifted_window_mask",
    "window_attention",
    "window_partition",
    "window_reverse",
    "window_shift",
]

#: LayerNorm epsilon of the Swin family (timm's ``nn.LayerNorm`` default).
LN_EPS = 1e-5
#: Added to the scores of token pairs that a shifted window must keep apart.
MASK_VALUE = -100.0


# -- window geometry (shared with the supernet, so the two cannot disagree) ----------------------
def window_shift(resolution: int, window: int, block: int, shift: Shift) -> int:
    """The cyclic shift of block ``block`` (0-based, within its stage) on a square map.

    ``window // 2`` in odd blocks under ``shift="alternate"``, else 0; always 0 when the
    (clamped) window covers the map, where shifting would change nothing but the mask.
    """
    window = min(window, resolution)
    if shift == "none" or block % 2 == 0 or window >= resolution:
        return 0
    return window // 2


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B * nW, window * window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def relative_position_index(window: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(A, A) long tensor, A = window²: the row of a ``(2w-1)², heads`` bias table that token pair
    (i, j) reads, ``(dy + w - 1) * (2w - 1) + (dx + w - 1)`` with ``(dy, dx) = pos_i - pos_j``
    (timm's layout)."""
    coords = torch.arange(window, device=device)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    flat = torch.stack((yy.flatten(), xx.flatten()))  # 2, A
    rel = flat[:, :, None] - flat[:, None, :] + (window - 1)  # 2, A, A
    return rel[0] * (2 * window - 1) + rel[1]


def shifted_window_mask(
    height: int,
    width: int,
    window: int,
    shift: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(nW, A, A) additive mask of SW-MSA on a ``height x width`` map (already padded to window
    multiples): 0 inside a region, -100 between tokens the roll brought from different regions."""
    labels = torch.zeros(1, height, width, 1, device=device, dtype=dtype)
    spans = ((0, -window), (-window, -shift), (-shift, None))
    region = 0
    for h0, h1 in spans:
        for w0, w1 in spans:
            labels[:, h0:h1, w0:w1, :] = region
            region += 1
    windows = window_partition(labels, window).squeeze(-1)  # nW, A
    diff = windows.unsqueeze(1) - windows.unsqueeze(2)
    return torch.zeros_like(diff).masked_fill(diff != 0, MASK_VALUE)


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(heads, A, A) bias from a ``(2w-1)², heads`` table and :func:`relative_position_index`."""
    a = index.shape[0]
    return table[index.reshape(-1)].view(a, a, -1).permute(2, 0, 1)


def window_attention(
    qkv: torch.Tensor,
    num_heads: int,
    head_dim: int,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """Multi-head attention inside windows with explicit matmuls (so ``FlopCounterMode`` counts
    them). ``qkv``: (B * nW, A, 3 * heads * head_dim) laid out ``[q | k | v]``; ``bias``:
    (heads, A, A); ``mask``: (nW, A, A) or None. Returns (B * nW, A, heads * head_dim)."""
    bn, a, _ = qkv.shape
    q, k, v = qkv.reshape(bn, a, 3, num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
    attn = (q * head_dim**-0.5) @ k.transpose(-2, -1)
    attn = attn + bias.unsqueeze(0)
    if mask is not None:
        nw = mask.shape[0]
        attn = attn.view(-1, nw, num_heads, a, a) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, a, a)
    attn = attn.softmax(dim=-1)
    return (attn @ v).transpose(1, 2).reshape(bn, a, num_heads * head_dim)


def shifted_window_attention(
    x: torch.Tensor,
    window: int,
    shift: int,
    attend: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """(S)W-MSA on a (B, H, W, C) map: pad to window multiples, roll by ``-shift``, split into
    windows, ``attend`` (B * nW, A, C) -> (B * nW, A, C), merge, roll back, crop the padding."""
    _, h, w, _ = x.shape
    pad_h, pad_w = (-h) % window, (-w) % window
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    hp, wp = h + pad_h, w + pad_w
    if shift:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    x = window_reverse(attend(window_partition(x, window)), window, hp, wp)
    if shift:
        x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
    if pad_h or pad_w:
        x = x[:, :h, :w, :].contiguous()
    return x


def merge_neighbours(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 neighbourhood concatenated at offsets
    (0,0), (1,0), (0,1), (1,1) (row, column), timm's order."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 4, 2, 5).flatten(3)


# -- modules -------------------------------------------------------------------------------------
class PatchEmbed(nn.Module):
    """Image to a (B, R, R, C) map: a ``patch_size`` strided convolution, then LayerNorm."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class WindowAttention(nn.Module):
    """W-MSA with a ``(2w-1)², heads`` relative position bias table (timm's layout)."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.window = window
        inner = num_heads * head_dim
        self.relative_position_bias_table = nn.Parameter(
            nn.init.trunc_normal_(torch.empty((2 * window - 1) ** 2, num_heads), std=0.02)
        )
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bias = relative_position_bias(
            self.relative_position_bias_table, self.relative_position_index
        )
        return self.proj(window_attention(self.qkv(x), self.num_heads, self.head_dim, bias, mask))


class SwinBlock(nn.Module):
    """A Swin block on a ``resolution x resolution`` map: x + (S)W-MSA(LN(x)), x + MLP(LN(x)).

    ``window`` is clamped to the map; ``shift`` is the cyclic shift (see :func:`window_shift`).
    """

    attn_mask: torch.Tensor | None

    def __init__(
        self,
        dim: int,
        resolution: int,
        num_heads: int,
        head_dim: int,
        window: int,
        shift: int,
        mlp_hidden_dim: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = min(window, resolution)
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = WindowAttention(dim, num_heads, head_dim, self.window)
        self.norm2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_hidden_dim)
        self.drop_path = drop_path
        mask = None
        if shift:
            padded = math.ceil(resolution / self.window) * self.window
            mask = shifted_window_mask(padded, padded, self.window, shift)
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = shifted_window_attention(
            self.norm1(x), self.window, self.shift, lambda w: self.attn(w, self.attn_mask)
        )
        x = x + drop_path(y, self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, window={self.window}, shift={self.shift}"


class PatchMerging(nn.Module):
    """2x2 neighbours to one token: LayerNorm(4C), then a bias-free linear 4C -> C'."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=LN_EPS)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduction(self.norm(merge_neighbours(x)))


class SwinStage(nn.Module):
    """One stage: a patch merging (``nn.Identity`` in stage 0, as timm), then its blocks."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[SwinBlock]) -> None:
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class SwinHead(nn.Module):
    """Mean over the map, then a linear classifier (timm's ``ClassifierHead``, keys ``head.fc``)."""

    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(1, 2)))


def _per_block(name: str, value: Any, depths: Sequence[int]) -> tuple[tuple[Any, ...], ...]:
    """A per-block spec from a scalar (every block), one scalar per stage, or one list per stage."""
    if not isinstance(value, Sequence):
        return tuple((value,) * d for d in depths)
    if len(value) != len(depths):
        raise ValueError(f"{name} has {len(value)} stages but depths has {len(depths)}")
    return tuple(
        tuple(v) if isinstance(v, Sequence) else (v,) * d
        for v, d in zip(value, depths, strict=True)
    )


class SwinTransformer(nn.Module):
    """A Swin Transformer with per-stage widths and per-block heads, MLP ratios and windows.

    Build it from plain sizes (as timm's constructor), from a space and a subnet
    (:meth:`from_space`), or from the dict that :meth:`config` returns, which is what an export
    stores beside the weights. ``num_heads``, ``mlp_ratio`` and ``window_size`` each take one
    value for every block, one value per stage, or one list per stage with one entry per block.
    Windows larger than their stage's map are clamped to it; ``.subnet`` records the clamped
    (canonical) windows.
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        in_chans: int,
        num_classes: int,
        embed_dim: Sequence[int],
        depths: Sequence[int],
        num_heads: Any,
        mlp_ratio: Any,
        window_size: Any,
        head_dim: int,
        shift: Shift = "alternate",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        depths = tuple(depths)
        n = len(depths)
        if img_size % patch_size or (img_size // patch_size) % 2 ** (n - 1):
            raise ValueError(
                f"img_size {img_size} / patch_size {patch_size} must be a whole multiple of "
                f"{2 ** (n - 1)} for {n} stages (every map even before a merge)"
            )
        if shift not in ("alternate", "none"):
            raise ValueError(f"shift must be 'alternate' or 'none', got {shift!r}")
        grid = img_size // patch_size
        windows = _per_block("window_size", window_size, depths)
        self.subnet = SwinSubnet(
            embed_dim=tuple(embed_dim),
            depth=depths,
            num_heads=_per_block("num_heads", num_heads, depths),
            mlp_ratio=_per_block("mlp_ratio", mlp_ratio, depths),
            window_size=tuple(
                tuple(min(w, grid >> s) for w in stage) for s, stage in enumerate(windows)
            ),
        )
        self.geometry: dict[str, Any] = {
            "img_size": img_size,
            "patch_size": patch_size,
            "in_chans": in_chans,
            "num_classes": num_classes,
            "head_dim": head_dim,
            "shift": shift,
        }
        self.drop_path_rate = drop_path_rate
        sub = self.subnet
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.patch_embed = PatchEmbed(patch_size, in_chans, sub.embed_dim[0])
        stages = []
        for s in range(n):
            resolution, dim = grid >> s, sub.embed_dim[s]
            downsample = nn.Identity() if s == 0 else PatchMerging(sub.embed_dim[s - 1], dim)
            first = sum(depths[:s])
            blocks = [
                SwinBlock(
                    dim,
                    resolution,
                    h,
                    head_dim,
                    w,
                    window_shift(resolution, w, j, shift),
                    hidden,
                    rates[first + j],
                )
                for j, ((h, _, w), hidden) in enumerate(
                    zip(sub.blocks(s), sub.mlp_hidden_dims()[s], strict=True)
                )
            ]
            stages.append(SwinStage(downsample, blocks))
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(sub.embed_dim[-1], eps=LN_EPS)
        self.head = SwinHead(sub.embed_dim[-1], num_classes)
        self.apply(init_weights)

    @classmethod
    def from_space(
        cls, space: SwinSpace, subnet: SwinSubnet, drop_path_rate: float = 0.0
    ) -> SwinTransformer:
        space.validate(subnet)
        return cls(
            img_size=space.img_size,
            patch_size=space.patch_size,
            in_chans=space.in_chans,
            num_classes=space.num_classes,
            embed_dim=subnet.embed_dim,
            depths=subnet.depth,
            num_heads=subnet.num_heads,
            mlp_ratio=subnet.mlp_ratio,
            window_size=subnet.window_size,
            head_dim=space.head_dim,
            shift=space.shift,
            drop_path_rate=drop_path_rate,
        )

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model with :meth:`from_config`."""
        return {"subnet": self.subnet.to_dict(), **self.geometry}

    @classmethod
    def from_config(cls, config: dict[str, Any], drop_path_rate: float = 0.0) -> SwinTransformer:
        config = dict(config)
        subnet = SwinSubnet.from_dict(config.pop("subnet"))
        return cls(
            **config,
            embed_dim=subnet.embed_dim,
            depths=subnet.depth,
            num_heads=subnet.num_heads,
            mlp_ratio=subnet.mlp_ratio,
            window_size=subnet.window_size,
            drop_path_rate=drop_path_rate,
        )

    def no_weight_decay(self) -> set[str]:
        """Parameters to exempt from weight decay: the relative position bias tables (as timm)."""
        return {n for n, _ in self.named_parameters() if n.endswith("relative_position_bias_table")}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> the last stage's normalised (B, R, R, C) map."""
        return self.norm(self.layers(self.patch_embed(x)))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return f"subnet={self.subnet}"

    # -- timm ------------------------------------------------------------------------------------
    def timm_reason(self) -> str | None:
        """Why timm's ``SwinTransformer`` cannot express this model, or None when it can."""
        sub, g = self.subnet, self.geometry
        c0 = sub.embed_dim[0]
        if any(c != c0 * 2**s for s, c in enumerate(sub.embed_dim)):
            return (
                f"timm's SwinTransformer doubles its width every stage; this model's widths are "
                f"{'-'.join(map(str, sub.embed_dim))}"
            )
        for s in range(sub.num_stages):
            for name in ("num_heads", "mlp_ratio", "window_size"):
                values = getattr(sub, name)[s]
                if len(set(values)) > 1:
                    return (
                        f"timm's SwinTransformer takes one {name} per stage; stage {s} has "
                        f"{'/'.join(f'{v:g}' if isinstance(v, float) else str(v) for v in values)}"
                    )
        for s, stage in enumerate(self.layers):
            for j, block in enumerate(stage.blocks):
                wanted = block.window // 2 if j % 2 and block.window < block.resolution else 0
                if block.shift != wanted:
                    return (
                        f"timm's SwinTransformer always shifts odd blocks; stage {s} block {j} "
                        f"does not (shift: {g['shift']})"
                    )
                if block.shift and block.resolution % block.window:
                    return (
                        f"stage {s} block {j} pads its {block.resolution}x{block.resolution} map "
                        f"to windows of {block.window} in a shifted block, which timm computes "
                        "differently (it pads after the roll, pytorch-image-models#2438)"
                    )
        return None

    def timm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``timm.models.swin_transformer.SwinTransformer`` for this model:
        its ``load_state_dict(model.state_dict(), strict=True)`` then gives the same logits.

        Raises :class:`~supernet.common.errors.UserError` (one line) when timm cannot express it.
        """
        reason = self.timm_reason()
        if reason is not None:
            raise UserError(f"cannot express subnet {self.subnet} in timm: {reason}")
        sub, g = self.subnet, self.geometry
        return {
            "img_size": g["img_size"],
            "patch_size": g["patch_size"],
            "in_chans": g["in_chans"],
            "num_classes": g["num_classes"],
            "global_pool": "avg",
            "embed_dim": sub.embed_dim[0],
            "depths": sub.depth,
            "num_heads": tuple(h[0] for h in sub.num_heads),
            "head_dim": g["head_dim"],
            # (w, w) per stage: timm reads a flat pair of ints as one (h, w) window for all stages
            "window_size": tuple((w[0], w[0]) for w in sub.window_size),
            "mlp_ratio": tuple(r[0] for r in sub.mlp_ratio),
            "qkv_bias": True,
            "drop_path_rate": self.drop_path_rate,
        }
