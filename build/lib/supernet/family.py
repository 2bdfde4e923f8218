"""Model families: what a family supplies, and the registry that finds one by name.

A family is one folder (``supernet/vit/``, ``supernet/swin/``) and one registration. Its
:class:`Family` names, as ``"module:attribute"`` references imported on first use, the parts
every other layer of the tool calls instead of knowing the family:

- ``space``: its :class:`~supernet.space.Space` subclass (whose ``subnet_cls`` is its subnet type:
  validation, dict/YAML/table round trips, smallest/largest/middle/sample);
- ``supernet``: its :class:`~supernet.model.Supernet` subclass (``forward(x, subnet)``,
  ``subnet_state_dict``; ``extract`` is shared);
- ``model``: its standalone model class (``from_space(space, subnet, drop_path_rate)``, the
  exported model; it must not import the supernet);
- ``complexity``: a module with ``breakdown(space, subnet)``, whose result has ``params``,
  ``macs``, ``flops`` and ``to_dict()`` (exact: what ``FlopCounterMode`` counts);
- ``codec``: a module with the Optuna encoding of a subnet (``suggest(trial, space)``,
  ``to_params(subnet)``, ``from_params(params)``) and AutoFormer's evolution operators
  (``mutate(space, parent, rng, *, mutation_prob, resample_prob)``, ``compatible(a, b)``,
  ``crossover(space, a, b, rng)``);
- ``latency``: a module with the latency predictor's ``FEATURES`` (name → what it counts),
  ``latency_features(space, subnet, batch_size)`` and ``designed_sample(space, n, rng)``.

Spaces, subnets, checkpoints and exports record their family's name (``family: swin``); a file
without one is a ViT file. The generic code asks :func:`family_of` for the family of a space or
subnet and calls it; it never tests for a family's classes.

Registering a third family: write its folder with those six parts and add one line to
:data:`BUILTIN` (or, from another package, declare an entry point in the ``vitnas.families``
group whose object is its :class:`Family`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from .model import Supernet
    from .space import Space, Subnet

__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "Family",
    "family_names",
    "family_of",
    "get_family",
    "register_family",
]

#: The families that ship with the tool: name → the package whose import registers it.
BUILTIN: dict[str, str] = {"vit": "supernet.vit", "swin": "supernet.swin"}

#: Entry-point group through which other packages add families.
ENTRY_POINT_GROUP = "vitnas.families"

_REGISTRY: dict[str, Family] = {}


def _resolve(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


@dataclass(frozen=True)
class Family:
    """One model family's parts, as ``"module:attribute"`` references (see the module doc)."""

    name: str
    space: str
    supernet: str
    model: str
    complexity: str
    codec: str
    latency: str

    # -- the parts -------------------------------------------------------------------------------
    @cached_property
    def space_cls(self) -> type[Space]:
        return _resolve(self.space)  # type: ignore[no-any-return]

    @property
    def subnet_cls(self) -> type[Subnet]:
        return self.space_cls.subnet_cls

    @cached_property
    def supernet_cls(self) -> type[Supernet]:
        return _resolve(self.supernet)  # type: ignore[no-any-return]

    @cached_property
    def model_cls(self) -> type[nn.Module]:
        return _resolve(self.model)  # type: ignore[no-any-return]

    @cached_property
    def _complexity(self) -> Any:
        return _resolve(self.complexity)

    @cached_property
    def _codec(self) -> Any:
        return _resolve(self.codec)

    @cached_property
    def _latency(self) -> Any:
        return _resolve(self.latency)

    # -- models ----------------------------------------------------------------------------------
    def build_model(self, space: Space, subnet: Subnet, drop_path_rate: float = 0.0) -> nn.Module:
        """The standalone model of ``subnet`` (random weights)."""
        return self.model_cls.from_space(space, subnet, drop_path_rate=drop_path_rate)  # type: ignore[attr-defined, no-any-return]

    def breakdown(self, space: Space, subnet: Subnet) -> Any:
        """The per-component cost of ``subnet`` (validated against ``space``) for one image."""
        return self._complexity.breakdown(space, subnet)

    # -- the Optuna encoding ---------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial, space: Space) -> Subnet:
        """Define-by-run: the subnet a trial's ``suggest_categorical`` calls choose."""
        return self._codec.suggest(trial, space)  # type: ignore[no-any-return]

    def to_params(self, subnet: Subnet) -> dict[str, Any]:
        """The trial parameters :meth:`suggest` gives for ``subnet`` (for ``enqueue_trial``)."""
        return self._codec.to_params(subnet)  # type: ignore[no-any-return]

    def from_params(self, params: Mapping[str, Any]) -> Subnet | None:
        """The subnet a trial's parameters describe, or None when they are incomplete."""
        return self._codec.from_params(params)  # type: ignore[no-any-return]

    # -- AutoFormer's evolution ------------------------------------------------------------------
    def mutate(
        self,
        space: Space,
        parent: Subnet,
        rng: random.Random,
        *,
        mutation_prob: float,
        resample_prob: float,
    ) -> Subnet:
        return self._codec.mutate(  # type: ignore[no-any-return]
            space, parent, rng, mutation_prob=mutation_prob, resample_prob=resample_prob
        )

    def compatible(self, first: Subnet, second: Subnet) -> bool:
        """Whether two subnets can be crossed gene by gene (same layer structure)."""
        return self._codec.compatible(first, second)  # type: ignore[no-any-return]

    def crossover(self, space: Space, first: Subnet, second: Subnet, rng: random.Random) -> Subnet:
        return self._codec.crossover(space, first, second, rng)  # type: ignore[no-any-return]

    # -- latency ---------------------------------------------------------------------------------
    @property
    def latency_feature_names(self) -> dict[str, str]:
        """The latency predictor's features: name → what it counts."""
        return dict(self._latency.FEATURES)

    def latency_features(self, space: Space, subnet: Subnet, batch_size: int) -> dict[str, float]:
        return self._latency.latency_features(space, subnet, batch_size)  # type: ignore[no-any-return]

    def designed_sample(self, space: Space, n: int, rng: random.Random) -> list[Subnet]:
        """``n`` distinct subnets spanning the space's cost range (latency calibration)."""
        return self._latency.designed_sample(space, n, rng)  # type: ignore[no-any-return]


def register_family(family: Family) -> Family:
    """Make ``family`` known by its name (a second registration of the same name replaces the
    first only if it is equal)."""
    known = _REGISTRY.get(family.name)
    if known is not None and known != family:
        raise ValueError(f"a different model family named {family.name!r} is registered already")
    _REGISTRY[family.name] = family
    return family


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def family_names() -> list[str]:
    """Every family the tool can load: the built-in ones and the entry points'."""
    return sorted({*BUILTIN, *_REGISTRY, *_entry_points()})


def get_family(name: str) -> Family:
    """The family called ``name``; ``KeyError`` with the known names when there is none."""
    family = _REGISTRY.get(name)
    if family is not None:
        return family
    if name in BUILTIN:
        importlib.import_module(BUILTIN[name])  # registers it
    else:
        entry = _entry_points().get(name)
        if entry is not None:
            loaded = entry.load()
            if not isinstance(loaded, Family):
                raise KeyError(f"entry point {entry.value} of family {name!r} is not a Family")
            register_family(loaded)
    if name not in _REGISTRY:
        raise KeyError(
            f"unknown model family {name!r}; the families are {', '.join(family_names())}"
        )
    return _REGISTRY[name]


def family_of(item: Space | Subnet | str) -> Family:
    """The family of a space, a subnet, or a family name."""
    return get_family(item if isinstance(item, str) else item.family)
