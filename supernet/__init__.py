"""Weight-sharing vision-transformer supernets in the style of AutoFormer, for every model family.

Public API::

    from supernet import SearchSpace, SubnetConfig, Supernet, complexity, load_subnet
    from supernet import load_preprocessing  # how raw images become an export's input

``SearchSpace.preset(name)`` / ``SearchSpace.from_yaml(path)`` return the space of the family the
file names (``vit`` when it names none); ``Supernet(space)`` builds that family's supernet;
``complexity`` and ``load_subnet`` work for every family (see :mod:`supernet.family`).

The names that need torch load on first use, so that reading spaces and subnets stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .common.startup import quiet_startup_interrupts

# In a command's process only, first thing: Ctrl-C or SIGTERM during its imports, one line.
quiet_startup_interrupts()

from .common.errors import CheckpointError, UserError  # noqa: E402
from .family import Family, family_names, family_of, get_family, register_family  # noqa: E402
from .space import Space, SpaceError, Subnet  # noqa: E402
from .vit.space import SearchSpace, SubnetConfig  # noqa: E402

if TYPE_CHECKING:
    from . import complexity
    from .checkpoint import load_supernet, save_checkpoint
    from .model import Supernet
    from .preprocessing import Preprocessing
    from .saved_model import load_preprocessing, load_subnet, save_subnet
    from .vit.model import VisionTransformer

_LAZY = {
    "Supernet": "model",
    "complexity": None,
    "load_supernet": "checkpoint",
    "save_checkpoint": "checkpoint",
    "load_subnet": "saved_model",
    "load_preprocessing": "saved_model",
    "Preprocessing": "preprocessing",
    "save_subnet": "saved_model",
    "VisionTransformer": "vit.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = _LAZY[name]
        if module is None:
            return importlib.import_module(f".{name}", __name__)
        return getattr(importlib.import_module(f".{module}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CheckpointError",
    "Family",
    "Preprocessing",
    "SearchSpace",
    "Space",
    "SpaceError",
    "Subnet",
    "SubnetConfig",
    "Supernet",
    "UserError",
    "VisionTransformer",
    "complexity",
    "family_names",
    "family_of",
    "get_family",
    "load_preprocessing",
    "load_subnet",
    "load_supernet",
    "register_family",
    "save_checkpoint",
    "save_subnet",
]
