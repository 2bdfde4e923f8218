"""The standalone Vision Transformer: what a subnet becomes once extracted or exported.

Plain PyTorch, per-layer head counts and MLP widths, no dependency on the supernet. Its state dict
keys follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
``blocks.N.attn.qkv`` ...), and Q, K, V are laid out as timm lays them out (``qkv`` rows are
``[q heads | k heads | v heads]``). With AutoFormer's relative positions each block's attention also
holds ``attn.rel_pos_k.row_table``, ``attn.rel_pos_k.col_table`` (keys) and ``attn.rel_pos_v.*``
(values): tables indexed by the row and the column distance between tokens
(:mod:`supernet.vit.relpos`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import drop_path
from .relpos import RelativePosition2D, relative_attention
from .space import SearchSpace, SubnetConfig

__all__ = [
    "Attention",
    "Block",
    "Mlp",
    "PatchEmbed",
    "VisionTransformer",
    "init_weights",
    "pool_tokens",
    "sinusoidal_position_embedding",
]


def pool_tokens(x: torch.Tensor, pool: str) -> torch.Tensor:
    """What the classifier reads from the final tokens (B, N, D): the CLS token (``cls``), the
    mean of all tokens (``mean``, which has no CLS token) or the mean of the patch tokens behind
    the CLS token (``cls_mean``, AutoFormer's ``--gp``)."""
    if pool == "cls":
        return x[:, 0]
    if pool == "cls_mean":
        return x[:, 1:].mean(dim=1)
    return x.mean(dim=1)


def sinusoidal_position_embedding(num_tokens: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)); (1, N, d)."""
    position = torch.arange(num_tokens, dtype=torch.float64).unsqueeze(1)
    even = torch.arange(0, dim, 2, dtype=torch.float64)
    angle = position / torch.pow(10000.0, even / dim)
    pe = torch.zeros(num_tokens, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : dim // 2])
    return pe.to(torch.float32).unsqueeze(0)


def init_weights(module: nn.Module) -> None:
    """timm's ViT initialisation: truncated normal (std .02) for linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PatchEmbed(nn.Module):
    """Image to patch tokens: a ``patch_size`` strided convolution, flattened to (B, P, D)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with ``num_heads`` heads of ``head_dim`` channels each, and
    AutoFormer's relative positions when ``rel_pos`` is ``(grid, max_distance)``."""

    def __init__(
        self, dim: int, num_heads: int, head_dim: int, rel_pos: tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner)
        self.proj = nn.Linear(inner, dim)
        self.rel_pos_k = RelativePosition2D(*rel_pos, head_dim) if rel_pos else None
        self.rel_pos_v = RelativePosition2D(*rel_pos, head_dim) if rel_pos else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.rel_pos_k is not None and self.rel_pos_v is not None:
            x = relative_attention(q, k, v, self.rel_pos_k(), self.rel_pos_v())
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, self.num_heads * self.head_dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        head_dim: int,
        mlp_hidden_dim: int,
        drop_path: float = 0.0,
        *,
        norm_eps: float = 1e-6,
        rel_pos: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, head_dim, rel_pos)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_hidden_dim)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path, self.training)


class VisionTransformer(nn.Module):
    """A ViT with per-layer head counts and MLP widths.

    Build it from a space and a subnet (``VisionTransformer.from_space``) or from the dict that
    :meth:`config` returns, which is what an export stores beside the weights.
    """

    def __init__(
        self,
        subnet: SubnetConfig,
        *,
        img_size: int,
        patch_size: int,
        in_chans: int,
        num_classes: int,
        head_dim: int,
        pool: str = "cls",
        pos_embed: str = "learned",
        rel_pos: str = "none",
        rel_pos_max_distance: int = 14,
        norm_eps: float = 1e-6,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.subnet = subnet
        self.geometry: dict[str, Any] = {
            "img_size": img_size,
            "patch_size": patch_size,
            "in_chans": in_chans,
            "num_classes": num_classes,
            "head_dim": head_dim,
            "pool": pool,
            "pos_embed": pos_embed,
            "rel_pos": rel_pos,
            "rel_pos_max_distance": rel_pos_max_distance,
            "norm_eps": norm_eps,
        }
        dim = subnet.embed_dim
        grid = img_size // patch_size
        cls_token = pool != "mean"
        num_tokens = grid**2 + (1 if cls_token else 0)
        self.pool = pool
        self.patch_embed = PatchEmbed(patch_size, in_chans, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos_embed: torch.Tensor | nn.Parameter
        if pos_embed == "learned":
            self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens, dim))
        else:
            self.register_buffer(
                "pos_embed", sinusoidal_position_embedding(num_tokens, dim), persistent=False
            )
        depth = subnet.depth
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        relative = (grid, rel_pos_max_distance) if rel_pos == "autoformer" else None
        self.blocks = nn.Sequential(
            *(
                Block(dim, h, head_dim, hidden, rate, norm_eps=norm_eps, rel_pos=relative)
                for h, hidden, rate in zip(
                    subnet.num_heads, subnet.mlp_hidden_dims(), rates, strict=True
                )
            )
        )
        self.norm = nn.LayerNorm(dim, eps=norm_eps)
        self.head = nn.Linear(dim, num_classes)
        self.apply(init_weights)
        if isinstance(self.pos_embed, nn.Parameter):
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    @classmethod
    def from_space(
        cls, space: SearchSpace, subnet: SubnetConfig, drop_path_rate: float = 0.0
    ) -> VisionTransformer:
        space.validate(subnet)
        return cls(
            subnet,
            img_size=space.img_size,
            patch_size=space.patch_size,
            in_chans=space.in_chans,
            num_classes=space.num_classes,
            head_dim=space.head_dim,
            pool=space.pool,
            pos_embed=space.pos_embed,
            rel_pos=space.rel_pos,
            rel_pos_max_distance=space.rel_pos_max_distance,
            norm_eps=space.norm_eps,
            drop_path_rate=drop_path_rate,
        )

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this model with :meth:`from_config`."""
        return {"subnet": self.subnet.to_dict(), **self.geometry}

    @classmethod
    def from_config(cls, config: dict[str, Any], drop_path_rate: float = 0.0) -> VisionTransformer:
        config = dict(config)
        subnet = SubnetConfig.from_dict(config.pop("subnet"))
        return cls(subnet, **config, drop_path_rate=drop_path_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self.pos_embed
        x = self.blocks(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(pool_tokens(x, self.pool))

    def no_weight_decay(self) -> set[str]:
        """The relative-position tables, exempt from weight decay as timm exempts position
        embeddings and relative-position bias tables."""
        return {name for name, _ in self.named_parameters() if name.endswith("_table")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return f"subnet={self.subnet}"
