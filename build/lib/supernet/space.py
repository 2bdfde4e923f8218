"""Search spaces and subnets of every model family: the base classes, their dispatch, and the
validation helpers the families share.

A family (``vit``, ``swin``; see :mod:`supernet.family`) defines a frozen dataclass for its space
and one for its subnets, subclasses of :class:`Space` and :class:`Subnet`. Every dict or YAML file
holding a space or a subnet names its family (``family: swin``); a missing key reads as ``vit``,
so every file written before families existed still loads. The dispatch happens here:

>>> SearchSpace.preset("swin_tiny")           # a SwinSpace: the preset's YAML says family: swin
>>> Space.from_dict({"family": "vit", ...})   # a SearchSpace (the ViT family's space)
>>> space.subnet_from_dict(data)              # that space's subnet type, validated against it

``Space``/``Subnet`` and the ViT classes ``SearchSpace``/``SubnetConfig`` (the only classes before
families existed, so the front door of older code) read data of any family; another family's
class (``SwinSpace.from_dict``) refuses data that names a family other than its own.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from .common.atomic import atomic_write_text
from .common.errors import UserError, quoted
from .common.validate import is_int, is_number
from .common.yamlio import YamlError
from .common.yamlio import read_yaml as _read_user_yaml

__all__ = [
    "CONF_DIR",
    "DEFAULT_FAMILY",
    "PRESETS_DIR",
    "Space",
    "SpaceError",
    "Subnet",
    "check_choices",
    "is_int",
    "is_number",
    "mlp_hidden_dim",
]

#: The Hydra configs: the repository's ``conf/``, which ships inside the package (``supernet/conf``
#: links to it in a checkout; a wheel holds a copy), so that an installed tool finds them.
CONF_DIR = Path(__file__).resolve().parent / "conf"

#: Where the named presets (``SearchSpace.preset(name)``) live: the Hydra ``space`` config group.
PRESETS_DIR = CONF_DIR / "space"

#: The family of a space or subnet whose data names none (every file older than families).
DEFAULT_FAMILY = "vit"

S = TypeVar("S", bound="Subnet")


class SpaceError(UserError, ValueError):
    """A search space or subnet is invalid. The message lists every problem found, one per line."""

    def __init__(self, what: str, problems: Sequence[str], fix: str | None = None) -> None:
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"invalid {what}: {self.problems[0]}"
        else:
            message = f"invalid {what}:\n" + "\n".join(f"  - {p}" for p in self.problems)
        if fix:
            message += f"; {fix}" if len(self.problems) == 1 else f"\n{fix}"
        super().__init__(message)


def mlp_hidden_dim(embed_dim: int, mlp_ratio: float) -> int:
    """Hidden width of a block's MLP (AutoFormer's ``int(embed_dim * mlp_ratio)``)."""
    return int(embed_dim * mlp_ratio)


# -- validation helpers shared by the families ---------------------------------------------------
def fmt(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def check_choices(name: str, values: object, problems: list[str], *, integer: bool) -> None:
    """Append to ``problems`` unless ``values`` is a non-empty tuple of positive choices."""
    kind = "integers" if integer else "numbers"
    if not isinstance(values, tuple) or len(values) == 0:
        problems.append(f"{name} must be a non-empty list of {kind}, got {quoted(values)}")
        return
    ok = is_int if integer else is_number
    bad = [v for v in values if not ok(v)]
    if bad:
        problems.append(f"{name} must hold only {kind}, got {fmt(quoted(v) for v in bad[:5])}")
        return
    small = [v for v in values if v <= 0]  # type: ignore[operator]
    if small:
        problems.append(f"{name} choices must be positive, got {fmt(small)}")
    if len(set(values)) != len(values):
        problems.append(f"{name} lists a choice twice: {fmt(values)}")


def as_tuple(value: object) -> object:
    """Lists (and OmegaConf ListConfigs) become tuples; anything else is left for validation."""
    if isinstance(value, (str, bytes, Mapping)):
        return value
    if isinstance(value, Iterable):
        return tuple(value)
    return value


def from_mapping(cls: type, data: Mapping[str, Any], what: str) -> Any:
    """``cls(**data)`` for a dataclass, naming unknown and missing fields (``family`` is the
    dispatch key, not a field: it is dropped here)."""
    if not isinstance(data, Mapping):
        raise SpaceError(what, [f"expected a mapping of fields, got {type(data).__name__}"])
    data = {k: v for k, v in data.items() if k != "family"}
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise SpaceError(what, [f"unknown field(s) {fmt(unknown)}; the fields are {fmt(names)}"])
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise SpaceError(what, [f"missing field(s) {fmt(missing)}"])
    return cls(**dict(data))


def read_yaml(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return _read_user_yaml(path, f"{what} file")
    except YamlError as exc:
        raise SpaceError(what, [str(exc)]) from None


def write_yaml(data: Mapping[str, Any], path: str | Path) -> None:
    """Write atomically: a crash never leaves a half-written file at ``path``."""
    atomic_write_text(path, yaml.safe_dump(dict(data), sort_keys=False))


def family_name(data: object, default: str, what: str) -> str:
    """The ``family`` a dict names (``default`` when it names none)."""
    if not isinstance(data, Mapping):
        raise SpaceError(what, [f"expected a mapping of fields, got {type(data).__name__}"])
    name = data.get("family", default)
    if name is None:
        return default
    if not isinstance(name, str):
        raise SpaceError(what, [f"family must be a family name, got {quoted(name)}"])
    return name


def _check_reader(cls: type, name: str, what: str) -> None:
    """Refuse another family's data in a family's own class (see the module docstring)."""
    own = getattr(cls, "family", None)
    if own is not None and own != name and not cls.__dict__.get("reads_any_family", False):
        raise SpaceError(what, [f"this is a {name} {what}, not a {own} one (family: {name})"])


def _family(name: str, what: str) -> Any:
    from .family import get_family  # the registry imports the families, which import this

    try:
        return get_family(name)
    except KeyError as exc:
        raise SpaceError(what, [str(exc.args[0])]) from None


# -- the base classes ----------------------------------------------------------------------------
class Subnet(ABC):
    """One architecture of a family's space. Subclasses are frozen, hashable dataclasses."""

    family: ClassVar[str]
    #: The columns :meth:`to_row` writes, in order, and those of them that hold JSON lists (the
    #: others hold integers).
    row_columns: ClassVar[tuple[str, ...]]
    row_json_columns: ClassVar[tuple[str, ...]]

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain data with ``family`` first; :meth:`from_dict` reads it back."""

    @abstractmethod
    def to_row(self) -> dict[str, Any]:
        """The subnet as the columns of a results table (lists as JSON text, one cell each)."""

    @classmethod
    @abstractmethod
    def _from_row(cls: type[S], row: Mapping[str, Any]) -> S:
        """This family's subnet from the columns :meth:`to_row` wrote."""

    @classmethod
    def _from_fields(cls: type[S], data: Mapping[str, Any]) -> S:
        return from_mapping(cls, data, "subnet")

    @classmethod
    def _default_family(cls) -> str:
        return getattr(cls, "family", DEFAULT_FAMILY)

    #: Whether ``from_dict`` reads data of any family (see the module docstring).
    reads_any_family: ClassVar[bool] = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subnet:
        """The subnet ``data`` describes, of the family it names (this class's when it names
        none, ``vit`` for :class:`Subnet` itself)."""
        name = family_name(data, cls._default_family(), "subnet")
        _check_reader(cls, name, "subnet")
        return _family(name, "subnet").subnet_cls._from_fields(data)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Subnet:
        """The subnet in a table row written with :meth:`to_row` (other columns are ignored;
        a ``family`` column picks the family)."""
        family = row.get("family") if hasattr(row, "get") else None
        name = family if isinstance(family, str) and family else cls._default_family()
        _check_reader(cls, name, "subnet")
        return _family(name, "subnet").subnet_cls._from_row(row)

    def to_yaml(self, path: str | Path) -> None:
        write_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Subnet:
        data = read_yaml(path, "subnet")
        if isinstance(data, Mapping) and "subnet" in data and "embed_dim" not in data:
            data = data["subnet"]  # an export's subnet.yaml nests the subnet beside the space
        return cls.from_dict(data)


class Space(ABC):
    """A family's elastic choices plus the geometry every subnet shares.

    Subclasses are frozen dataclasses, validated on construction, with the class attributes
    ``family`` and ``subnet_cls`` and at least the fields below (the input geometry every family
    has; ``name`` is not compared).
    """

    family: ClassVar[str]
    subnet_cls: ClassVar[type[Subnet]]
    img_size: int
    patch_size: int
    in_chans: int
    num_classes: int
    name: str

    # -- subnets ---------------------------------------------------------------------------------
    @abstractmethod
    def validate(self, subnet: Subnet) -> Subnet:
        """Return ``subnet`` if this space holds it, else raise :class:`SpaceError` saying why."""

    @abstractmethod
    def smallest(self) -> Subnet: ...

    @abstractmethod
    def largest(self) -> Subnet: ...

    @abstractmethod
    def middle(self) -> Subnet:
        """The (lower) median choice of every dimension, in every layer."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Subnet:
        """A uniformly random subnet: every dimension and every layer drawn independently."""

    @abstractmethod
    def count_subnets(self) -> int:
        """How many distinct subnets this space holds."""

    def contains(self, subnet: Subnet) -> bool:
        try:
            self.validate(subnet)
        except SpaceError:
            return False
        return True

    def check_family(self, subnet: object) -> None:
        """Refuse a subnet of another family (or anything that is not a subnet) in one line."""
        if isinstance(subnet, Subnet) and subnet.family != self.family:
            raise SpaceError(
                "subnet for this space",
                [f"a {subnet.family} subnet was given to a {self.family} search space"],
            )
        if not isinstance(subnet, self.subnet_cls):
            raise TypeError(f"expected a {self.subnet_cls.__name__}, got {type(subnet).__name__}")

    def subnet_from_dict(self, data: Mapping[str, Any]) -> Subnet:
        """The subnet ``data`` describes (this space's family when it names none), validated."""
        name = family_name(data, self.family, "subnet")
        if name != self.family:
            raise SpaceError(
                "subnet for this space",
                [f"a {name} subnet was given to a {self.family} search space"],
            )
        return self.validate(self.subnet_cls._from_fields(data))

    def subnet_from_row(self, row: Mapping[str, Any]) -> Subnet:
        """The subnet of a table row (see :meth:`Subnet.to_row`), validated."""
        return self.validate(self.subnet_cls._from_row(row))

    # -- serialisation ---------------------------------------------------------------------------
    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain data with ``family`` first; :meth:`from_dict` reads it back."""

    def differences(self, other: Space) -> list[str]:
        """Names of the fields (``name`` excluded) in which two spaces differ."""
        if type(other) is not type(self):
            return ["family"]
        return [
            f.name
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.compare and getattr(self, f.name) != getattr(other, f.name)
        ]

    @classmethod
    def _from_fields(cls, data: Mapping[str, Any]) -> Space:
        return from_mapping(cls, data, "search space")

    @classmethod
    def _default_family(cls) -> str:
        return getattr(cls, "family", DEFAULT_FAMILY)

    #: Whether ``from_dict`` reads data of any family (see the module docstring).
    reads_any_family: ClassVar[bool] = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Space:
        """The space ``data`` describes, of the family it names (this class's when it names
        none, ``vit`` for :class:`Space` itself)."""
        name = family_name(data, cls._default_family(), "search space")
        _check_reader(cls, name, "search space")
        return _family(name, "search space").space_cls._from_fields(data)

    def to_yaml(self, path: str | Path) -> None:
        write_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Space:
        data = read_yaml(path, "search space")
        if isinstance(data, Mapping) and "space" in data and "embed_dim" not in data:
            data = data["space"]  # an export's subnet.yaml nests the space beside the subnet
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> Space:
        """A named preset from ``conf/space/`` (``autoformer_tiny``, ``swin_tiny``, ...), of the
        family its file names."""
        path = PRESETS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise SpaceError("search space", [f"no preset {name!r}; presets: {fmt(known)}"])
        return cls.from_yaml(path)
