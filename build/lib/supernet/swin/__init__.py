"""The Swin family: hierarchical stages, (shifted) window attention, patch merging.

Its parts: ``space`` (:class:`SwinSpace`, :class:`SwinSubnet`), ``supernet``
(:class:`SwinSupernet`), ``model`` (the standalone :class:`SwinTransformer`, timm's state-dict
layout), ``complexity`` (the exact cost model), ``codec`` (Optuna parameters, mutation and
crossover) and ``latency`` (latency features and a designed sample). The model classes load on
first use, so that reading a space does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..family import Family, register_family
from .space import SwinSpace, SwinSubnet

if TYPE_CHECKING:
    from .model import SwinTransformer
    from .supernet import SwinSupernet

__all__ = ["FAMILY", "SwinSpace", "SwinSubnet", "SwinSupernet", "SwinTransformer"]

FAMILY = register_family(
    Family(
        name="swin",
        space="supernet.swin.space:SwinSpace",
        supernet="supernet.swin.supernet:SwinSupernet",
        model="supernet.swin.model:SwinTransformer",
        complexity="supernet.swin.complexity",
        codec="supernet.swin.codec",
        latency="supernet.swin.latency",
    )
)

_LAZY = {"SwinTransformer": "model", "SwinSupernet": "supernet"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
