"""Weight-sharing ViT supernets in the style of AutoFormer.

Public API::

    from supernet import SearchSpace, SubnetConfig, Supernet, complexity, load_subnet
"""

from __future__ import annotations

from . import complexity
from .checkpoint import load_supernet, save_checkpoint
from .errors import CheckpointError, UserError
from .model import Supernet
from .saved_model import load_subnet, save_subnet
from .space import SearchSpace, SpaceError, SubnetConfig
from .vit import VisionTransformer

__all__ = [
    "CheckpointError",
    "SearchSpace",
    "SpaceError",
    "SubnetConfig",
    "Supernet",
    "UserError",
    "VisionTransformer",
    "complexity",
    "load_subnet",
    "load_supernet",
    "save_checkpoint",
    "save_subnet",
]
