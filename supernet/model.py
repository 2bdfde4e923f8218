"""The weight-sharing supernet: one set of weights, any subnet of the space.

>>> space = SearchSpace.preset("digits")
>>> net = Supernet(space)
>>> logits = net(images, space.largest())  # the subnet is an argument, never module state
>>> model = net.extract(space.smallest())  # a standalone VisionTransformer, copied weights
"""

from __future__ import annotations

import torch
from torch import nn

from .elastic import ElasticBlock, ElasticLayerNorm, ElasticLinear, ElasticPatchEmbed
from .resources import check_memory
from .space import SearchSpace, SubnetConfig
from .vit import VisionTransformer, sinusoidal_position_embedding

__all__ = ["Supernet", "weight_count"]


def weight_count(space: SearchSpace) -> int:
    """The supernet's parameters, from the space alone (before allocating any of them)."""
    d, q, m = space.max_embed_dim, space.max_num_heads * space.head_dim, space.max_mlp_hidden_dim
    block = (d * 3 * q + 3 * q) + (q * d + d) + (d * m + m) + (m * d + d) + 4 * d
    patch = space.in_chans * space.patch_size**2 * d + d
    tokens = space.num_tokens * d if space.pos_embed == "learned" else 0
    return patch + tokens + d + space.max_depth * block + 2 * d + d * space.num_classes + d


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        if not isinstance(space, SearchSpace):
            raise TypeError(f"expected a SearchSpace, got {type(space).__name__}")
        count = weight_count(space)
        check_memory(  # refused before allocating: the allocator (or the OOM killer) is rougher
            4 * count,
            f"the supernet of this search space ({count:,} float32 weights: embed_dim up to "
            f"{space.max_embed_dim}, depth up to {space.max_depth})",
            "choose smaller space.* choices (embed_dim, depth, num_heads, mlp_ratio)",
        )
        self.space = space
        max_dim, depth = space.max_embed_dim, space.max_depth
        self.patch_embed = ElasticPatchEmbed(space.patch_size, space.in_chans, max_dim)
        self.cls_token = (
            nn.Parameter(torch.empty(1, 1, max_dim).normal_(std=1e-6))
            if space.pool == "cls"
            else None
        )
        self.pos_embed = (
            nn.Parameter(nn.init.trunc_normal_(torch.empty(1, space.num_tokens, max_dim), std=0.02))
            if space.pos_embed == "learned"
            else None
        )
        self._sinusoidal: dict[int, torch.Tensor] = {}
        self.blocks = nn.ModuleList(
            ElasticBlock(
                max_dim,
                space.max_num_heads,
                space.head_dim,
                space.max_mlp_hidden_dim,
                drop_path_rate * i / max(depth - 1, 1),
            )
            for i in range(depth)
        )
        self.norm = ElasticLayerNorm(max_dim)
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

    def check_input(self, x: torch.Tensor) -> None:
        s = self.space
        expected = (s.in_chans, s.img_size, s.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (batch, {s.in_chans}, {s.img_size}, {s.img_size}) for "
                f"this space, got {tuple(x.shape)}"
            )

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
        x = self.forward_features(x, subnet)
        x = x[:, 0] if self.space.pool == "cls" else x.mean(dim=1)
        return self.head(x, self.space.num_classes)

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

    @torch.no_grad()
    def extract(self, subnet: SubnetConfig, drop_path_rate: float = 0.0) -> VisionTransformer:
        """A standalone :class:`VisionTransformer` holding copies of the subnet's weights.

        It lives on the supernet's device and dtype, in eval mode, and needs no supernet to run.
        """
        ref = next(self.parameters())
        with torch.device(ref.device):
            model = VisionTransformer.from_space(self.space, subnet, drop_path_rate=drop_path_rate)
        model.to(dtype=ref.dtype)
        model.load_state_dict(
            {k: v.detach().clone().contiguous() for k, v in self.subnet_state_dict(subnet).items()},
            strict=True,
        )
        return model.eval()
