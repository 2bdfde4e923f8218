"""Elastic building blocks every family shares, with weight entanglement.

Each layer owns the weights of its largest configuration and takes its active sizes as arguments.
A smaller configuration uses the leading slice of every weight (AutoFormer's weight
entanglement). ``sliced(...)`` is the one place a layer's slicing is defined: ``forward`` computes
with it and ``Supernet.extract`` copies it into the standalone model, so the two cannot disagree.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ElasticLayerNorm",
    "ElasticLinear",
    "ElasticPatchEmbed",
    "ElasticQKV",
    "drop_path",
]

Params = dict[str, torch.Tensor]


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the residual branch per sample with probability ``p``."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


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
