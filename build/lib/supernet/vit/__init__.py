"""The ViT family: AutoFormer's plain vision transformers (one token count, one width, per-layer
heads and MLP ratio).

Its parts: ``space`` (:class:`SearchSpace`, :class:`SubnetConfig`), ``supernet``
(:class:`VitSupernet`), ``model`` (the standalone :class:`VisionTransformer`), ``complexity``,
``codec`` and ``latency``. The standalone model's names load on first use, so that reading a space
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..family import Family, register_family
from .space import SearchSpace, SubnetConfig, mlp_hidden_dim

if TYPE_CHECKING:
    from .model import VisionTransformer, sinusoidal_position_embedding
    from .supernet import VitSupernet

__all__ = [
    "FAMILY",
    "SearchSpace",
    "SubnetConfig",
    "VisionTransformer",
    "VitSupernet",
    "mlp_hidden_dim",
    "sinusoidal_position_embedding",
]

FAMILY = register_family(
    Family(
        name="vit",
        space="supernet.vit.space:SearchSpace",
        supernet="supernet.vit.supernet:VitSupernet",
        model="supernet.vit.model:VisionTransformer",
        complexity="supernet.vit.complexity",
        codec="supernet.vit.codec",
        latency="supernet.vit.latency",
    )
)

_LAZY = {
    "VisionTransformer": "model",
    "sinusoidal_position_embedding": "model",
    "VitSupernet": "supernet",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
