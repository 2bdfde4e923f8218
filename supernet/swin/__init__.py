"""The Swin family: hierarchical stages, (shifted) window attention, patch merging.

``space`` (:class:`SwinSpace`, :class:`SwinSubnet`), ``supernet`` (:class:`SwinSupernet`),
``model`` (the standalone :class:`SwinTransformer`, timm's state-dict layout), ``complexity``
(the exact cost model), ``codec`` (Optuna parameters, mutation and crossover) and ``latency``
(latency features and a designed sample).
"""

from __future__ import annotations

from .model import SwinTransformer
from .space import SwinSpace, SwinSubnet
from .supernet import SwinSupernet

__all__ = ["SwinSpace", "SwinSubnet", "SwinSupernet", "SwinTransformer"]
