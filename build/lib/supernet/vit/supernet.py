"""The ViT family's weight-sharing supernet: one set of weights, any subnet of the space.

>>> space = SearchSpace.preset("digits")
>>> net = Supernet(space)                  # a VitSupernet
>>> logits = net(images, space.largest())  # the subnet is an argument, never module state
>>> model = net.extract(space.smallest())  # a standalone VisionTransformer, copied weights
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ElasticLayerNorm, ElasticLinear, ElasticPatchEmbed, ElasticQKV, drop_path
from ..model import Supernet
from .model import pool_tokens, sinusoidal_position_embedding
from .relpos import RelativePosition2D, relative_attention
from .space import SearchSpace, SubnetConfig

__all__ = ["ElasticBlock", "VitSupernet"]

Params = dict[str, torch.Tensor]


class ElasticBlock(nn.Module):
    """A pre-norm transformer block with elastic width, head count and MLP width, and AutoFormer's
    relative positions when ``rel_pos`` is ``(grid, max_distance)`` (tables every subnet uses
    whole)."""

    def __init__(
        self,
        max_dim: int,
        max_heads: int,
        head_dim: int,
        max_mlp: int,
        drop_path: float = 0.0,
        *,
        norm_eps: float = 1e-6,
        rel_pos: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.norm1 = ElasticLayerNorm(max_dim, norm_eps)
        self.qkv = ElasticQKV(max_dim, max_heads, head_dim)
        self.proj = ElasticLinear(max_heads * head_dim, max_dim)
        self.rel_pos_k = RelativePosition2D(*rel_pos, head_dim) if rel_pos else None
        self.rel_pos_v = RelativePosition2D(*rel_pos, head_dim) if rel_pos else None
        self.norm2 = ElasticLayerNorm(max_dim, norm_eps)
        self.fc1 = ElasticLinear(max_dim, max_mlp)
        self.fc2 = ElasticLinear(max_mlp, max_dim)
        self.drop_path = drop_path

    def sliced(self, dim: int, num_heads: int, mlp_hidden: int) -> Params:
        """This block's weights for the given sizes, named as in :class:`.model.Block`."""
        inner = num_heads * self.head_dim
        parts: dict[str, Params] = {
            "norm1": self.norm1.sliced(dim),
            "attn.qkv": self.qkv.sliced(dim, 3 * inner),
            "attn.proj": self.proj.sliced(inner, dim),
            **(
                {
                    "attn.rel_pos_k": self.rel_pos_k.sliced(),
                    "attn.rel_pos_v": self.rel_pos_v.sliced(),
                }
                if self.rel_pos_k is not None and self.rel_pos_v is not None
                else {}
            ),
            "norm2": self.norm2.sliced(dim),
            "mlp.fc1": self.fc1.sliced(dim, mlp_hidden),
            "mlp.fc2": self.fc2.sliced(mlp_hidden, dim),
        }
        return {f"{name}.{key}": t for name, p in parts.items() for key, t in p.items()}

    def attention(self, x: torch.Tensor, num_heads: int) -> torch.Tensor:
        b, n, dim = x.shape
        inner = num_heads * self.head_dim
        qkv = self.qkv(x, 3 * inner).reshape(b, n, 3, num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.rel_pos_k is not None and self.rel_pos_v is not None:
            x = relative_attention(q, k, v, self.rel_pos_k(), self.rel_pos_v())
        else:
            x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, inner), dim)

    def mlp(self, x: torch.Tensor, mlp_hidden: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x, mlp_hidden)), x.shape[-1])

    def forward(self, x: torch.Tensor, num_heads: int, mlp_hidden: int) -> torch.Tensor:
        x = x + drop_path(self.attention(self.norm1(x), num_heads), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x), mlp_hidden), self.drop_path, self.training)


class VitSupernet(Supernet):
    def __init__(self, space: SearchSpace, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not isinstance(space, SearchSpace):
            raise TypeError(f"expected a SearchSpace, got {type(space).__name__}")
        self.space = space
        max_dim, depth = space.max_embed_dim, space.max_depth
        self.patch_embed = ElasticPatchEmbed(space.patch_size, space.in_chans, max_dim)
        self.cls_token = (
            nn.Parameter(torch.empty(1, 1, max_dim).normal_(std=1e-6))
            if space.has_cls_token
            else None
        )
        self.pos_embed = (
            nn.Parameter(nn.init.trunc_normal_(torch.empty(1, space.num_tokens, max_dim), std=0.02))
            if space.pos_embed == "learned"
            else None
        )
        self._sinusoidal: dict[int, torch.Tensor] = {}
        grid = space.img_size // space.patch_size
        rel_pos = (grid, space.rel_pos_max_distance) if space.rel_pos == "autoformer" else None
        self.blocks = nn.ModuleList(
            ElasticBlock(
                max_dim,
                space.max_num_heads,
                space.head_dim,
                space.max_mlp_hidden_dim,
                drop_path_rate * i / max(depth - 1, 1),
                norm_eps=space.norm_eps,
                rel_pos=rel_pos,
            )
            for i in range(depth)
        )
        self.norm = ElasticLayerNorm(max_dim, space.norm_eps)
        self.head = ElasticLinear(max_dim, space.num_classes)

    # -- forward ---------------------------------------------------------------------------------
    def _position(self, dim: int, device: torch.device) -> torch.Tensor:
        if self.pos_embed is not None:
            return self.pos_embed[..., :dim]
        table = self._sinusoidal.get(dim)
        if table is None or table.device != device:
            table = sinusoidal_position_embedding(self.space.num_tokens, dim).to(device)
            self._sinusoidal[dim] = table
        return table

    def forward_features(self, x: torch.Tensor, subnet: SubnetConfig) -> torch.Tensor:
        self.space.validate(subnet)
        self.check_input(x)
        dim = subnet.embed_dim
        x = self.patch_embed(x, dim)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token[..., :dim].expand(x.shape[0], -1, -1), x), dim=1)
        x = x + self._position(dim, x.device)
        for block, heads, hidden in zip(
            self.blocks, subnet.num_heads, subnet.mlp_hidden_dims(), strict=False
        ):
            x = block(x, heads, hidden)
        return self.norm(x)

    def forward(self, x: torch.Tensor, subnet: SubnetConfig) -> torch.Tensor:
        """Logits of ``subnet`` for images ``x`` of shape (B, in_chans, img_size, img_size)."""
        x = pool_tokens(self.forward_features(x, subnet), self.space.pool)
        return self.head(x, self.space.num_classes)

    def no_weight_decay(self) -> set[str]:
        """The relative-position tables (as the standalone model says)."""
        return {name for name, _ in self.named_parameters() if name.endswith("_table")}

    # -- extraction ------------------------------------------------------------------------------
    def subnet_state_dict(self, subnet: SubnetConfig) -> dict[str, torch.Tensor]:
        """The subnet's slices of the supernet weights, keyed as in the standalone model.

        The tensors are views (they share storage with the supernet); clone them to keep them.
        """
        self.space.validate(subnet)
        dim = subnet.embed_dim
        state: dict[str, torch.Tensor] = {
            f"patch_embed.{k}": v for k, v in self.patch_embed.sliced(dim).items()
        }
        if self.cls_token is not None:
            state["cls_token"] = self.cls_token[..., :dim]
        if self.pos_embed is not None:
            state["pos_embed"] = self.pos_embed[..., :dim]
        for i, (heads, hidden) in enumerate(
            zip(subnet.num_heads, subnet.mlp_hidden_dims(), strict=True)
        ):
            for k, v in self.blocks[i].sliced(dim, heads, hidden).items():
                state[f"blocks.{i}.{k}"] = v
        state.update({f"norm.{k}": v for k, v in self.norm.sliced(dim).items()})
        state.update(
            {f"head.{k}": v for k, v in self.head.sliced(dim, self.space.num_classes).items()}
        )
        return state
