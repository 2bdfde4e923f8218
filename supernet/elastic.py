"""Elastic layers with weight entanglement.

Each layer owns the weights of its largest configuration and takes its active sizes as arguments.
A smaller configuration uses the leading slice of every weight (AutoFormer's weight
entanglement). ``sliced(...)`` is the one place a layer's slicing is defined: ``forward`` computes
with it and ``Supernet.extract`` copies it into the standalone model, so the two cannot disagree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vit import drop_path

__all__ = ["ElasticBlock", "ElasticLayerNorm", "ElasticLinear", "ElasticPatchEmbed", "ElasticQKV"]

Params = dict[str, torch.Tensor]


class ElasticLinear(nn.Module):
    """A linear layer whose active (in, out) features are the leading rows and columns."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in))
        self.bias = nn.Parameter(torch.zeros(max_out))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def sliced(self, in_features: int, out_features: int) -> Params:
        return {
            "weight": self.weight[:out_features, :in_features],
            "bias": self.bias[:out_features],
        }

    def forward(self, x: torch.Tensor, out_features: int) -> torch.Tensor:
        p = self.sliced(x.shape[-1], out_features)
        return F.linear(x, p["weight"], p["bias"])


class ElasticQKV(ElasticLinear):
    """The fused Q/K/V projection. Rows are ``[q | k | v]``, each ``max_heads * head_dim`` long.

    Q, K and V of head ``h`` keep the same weight rows and bias entries whatever the number of
    active heads: with ``n`` heads the slice takes rows ``[0, n*head_dim)`` of each of the three
    parts (not the first ``3*n*head_dim`` rows of the fused matrix, nor a bias slice that mixes
    the parts).
    """

    def __init__(self, max_in: int, max_heads: int, head_dim: int) -> None:
        super().__init__(max_in, 3 * max_heads * head_dim)
        self.max_heads = max_heads
        self.head_dim = head_dim

    def sliced(self, in_features: int, out_features: int) -> Params:
        width = out_features // 3
        max_width = self.max_heads * self.head_dim
        weight = self.weight.view(3, max_width, -1)[:, :width, :in_features]
        bias = self.bias.view(3, max_width)[:, :width]
        return {"weight": weight.reshape(3 * width, in_features), "bias": bias.reshape(3 * width)}


class ElasticLayerNorm(nn.Module):
    def __init__(self, max_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(max_dim))
        self.bias = nn.Parameter(torch.zeros(max_dim))
        self.eps = eps

    def sliced(self, dim: int) -> Params:
        return {"weight": self.weight[:dim], "bias": self.bias[:dim]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        return F.layer_norm(x, (dim,), self.weight[:dim], self.bias[:dim], self.eps)


class ElasticPatchEmbed(nn.Module):
    """The patch projection (a strided convolution) with elastic output channels."""

    def __init__(self, patch_size: int, in_chans: int, max_dim: int) -> None:
        super().__init__()
        # nn.Conv2d gives the same initialisation as the standalone model's patch embedding.
        conv = nn.Conv2d(in_chans, max_dim, kernel_size=patch_size, stride=patch_size)
        self.weight = nn.Parameter(conv.weight.detach().clone())
        self.bias = nn.Parameter(conv.bias.detach().clone())  # type: ignore[union-attr]
        self.patch_size = patch_size

    def sliced(self, dim: int) -> Params:
        return {"proj.weight": self.weight[:dim], "proj.bias": self.bias[:dim]}

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        x = F.conv2d(x, self.weight[:dim], self.bias[:dim], stride=self.patch_size)
        return x.flatten(2).transpose(1, 2)


class ElasticBlock(nn.Module):
    """A pre-norm transformer block with elastic width, head count and MLP width."""

    def __init__(
        self, max_dim: int, max_heads: int, head_dim: int, max_mlp: int, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.norm1 = ElasticLayerNorm(max_dim)
        self.qkv = ElasticQKV(max_dim, max_heads, head_dim)
        self.proj = ElasticLinear(max_heads * head_dim, max_dim)
        self.norm2 = ElasticLayerNorm(max_dim)
        self.fc1 = ElasticLinear(max_dim, max_mlp)
        self.fc2 = ElasticLinear(max_mlp, max_dim)
        self.drop_path = drop_path

    def sliced(self, dim: int, num_heads: int, mlp_hidden: int) -> Params:
        """This block's weights for the given sizes, named as in :class:`supernet.vit.Block`."""
        inner = num_heads * self.head_dim
        parts: dict[str, Params] = {
            "norm1": self.norm1.sliced(dim),
            "attn.qkv": self.qkv.sliced(dim, 3 * inner),
            "attn.proj": self.proj.sliced(inner, dim),
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
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, inner), dim)

    def mlp(self, x: torch.Tensor, mlp_hidden: int) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x, mlp_hidden)), x.shape[-1])

    def forward(self, x: torch.Tensor, num_heads: int, mlp_hidden: int) -> torch.Tensor:
        x = x + drop_path(self.attention(self.norm1(x), num_heads), self.drop_path, self.training)
        return x + drop_path(self.mlp(self.norm2(x), mlp_hidden), self.drop_path, self.training)
