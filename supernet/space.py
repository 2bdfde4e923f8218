"""The search space: one typed source of truth for model, cost model, search and export.

A :class:`SearchSpace` holds the elastic choices (embedding width, depth, per-layer head count and
per-layer MLP ratio) and the fixed geometry every subnet shares (image and patch size, channels,
classes, head width, pooling, position embedding). A :class:`SubnetConfig` is one architecture;
``space.validate(subnet)`` says whether the space holds it.

Both are frozen dataclasses, validated on construction, and round-trip through plain dicts and
YAML (``to_dict`` / ``from_dict`` / ``to_yaml`` / ``from_yaml``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .atomic import atomic_write_text
from .errors import UserError, quoted
from .yamlio import YamlError, read_yaml

__all__ = ["PRESETS_DIR", "SearchSpace", "SpaceError", "SubnetConfig", "mlp_hidden_dim"]

Pool = Literal["cls", "mean"]
PosEmbed = Literal["learned", "sinusoidal"]

#: Where the named presets (``SearchSpace.preset(name)``) live: the Hydra ``space`` config group.
PRESETS_DIR = Path(__file__).resolve().parent.parent / "conf" / "space"


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


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]


def _fmt(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def _check_choices(name: str, values: object, problems: list[str], *, integer: bool) -> None:
    """Append to ``problems`` unless ``values`` is a non-empty tuple of positive choices."""
    kind = "integers" if integer else "numbers"
    if not isinstance(values, tuple) or len(values) == 0:
        problems.append(f"{name} must be a non-empty list of {kind}, got {quoted(values)}")
        return
    ok = _is_int if integer else _is_number
    bad = [v for v in values if not ok(v)]
    if bad:
        problems.append(f"{name} must hold only {kind}, got {_fmt(quoted(v) for v in bad[:5])}")
        return
    small = [v for v in values if v <= 0]  # type: ignore[operator]
    if small:
        problems.append(f"{name} choices must be positive, got {_fmt(small)}")
    if len(set(values)) != len(values):
        problems.append(f"{name} lists a choice twice: {_fmt(values)}")


def _as_tuple(value: object) -> object:
    """Lists (and OmegaConf ListConfigs) become tuples; anything else is left for validation."""
    if isinstance(value, (str, bytes, Mapping)):
        return value
    if isinstance(value, Iterable):
        return tuple(value)
    return value


def _from_mapping(cls: type, data: Mapping[str, Any], what: str) -> Any:
    if not isinstance(data, Mapping):
        raise SpaceError(what, [f"expected a mapping of fields, got {type(data).__name__}"])
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SpaceError(what, [f"unknown field(s) {_fmt(unknown)}; the fields are {_fmt(names)}"])
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        raise SpaceError(what, [f"missing field(s) {_fmt(missing)}"])
    return cls(**dict(data))


def _read_yaml(path: str | Path, what: str) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return read_yaml(path, f"{what} file")
    except YamlError as exc:
        raise SpaceError(what, [str(exc)]) from None


def _write_yaml(data: Mapping[str, Any], path: str | Path) -> None:
    """Write atomically: a crash never leaves a half-written file at ``path``."""
    atomic_write_text(path, yaml.safe_dump(dict(data), sort_keys=False))


@dataclass(frozen=True)
class SubnetConfig:
    """One architecture of a space: width, depth and, per active layer, heads and MLP ratio."""

    embed_dim: int
    depth: int
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_heads", _as_tuple(self.num_heads))
        mlp = _as_tuple(self.mlp_ratio)
        if isinstance(mlp, tuple):
            mlp = tuple(float(r) if _is_number(r) else r for r in mlp)
        object.__setattr__(self, "mlp_ratio", mlp)
        problems: list[str] = []
        if not _is_int(self.embed_dim) or self.embed_dim < 1:
            problems.append(f"embed_dim must be a positive integer, got {quoted(self.embed_dim)}")
        if not _is_int(self.depth) or self.depth < 1:
            problems.append(f"depth must be a positive integer, got {quoted(self.depth)}")
        for name in ("num_heads", "mlp_ratio"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                problems.append(
                    f"{name} must be a list with one entry per layer, got {quoted(values)}"
                )
            elif _is_int(self.depth) and len(values) != self.depth:
                problems.append(
                    f"{name} has {len(values)} entries but depth is {self.depth}: "
                    "give one entry per active layer"
                )
        if isinstance(self.num_heads, tuple) and not all(
            _is_int(h) and h >= 1 for h in self.num_heads
        ):
            problems.append(f"num_heads must hold positive integers, got {list(self.num_heads)}")
        if isinstance(self.mlp_ratio, tuple) and not all(
            _is_number(r) and r > 0 for r in self.mlp_ratio
        ):
            problems.append(f"mlp_ratio must hold positive numbers, got {list(self.mlp_ratio)}")
        if problems:
            raise SpaceError("subnet", problems)

    # -- derived sizes ---------------------------------------------------------------------------
    def mlp_hidden_dims(self) -> tuple[int, ...]:
        return tuple(mlp_hidden_dim(self.embed_dim, r) for r in self.mlp_ratio)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": list(self.num_heads),
            "mlp_ratio": list(self.mlp_ratio),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubnetConfig:
        return _from_mapping(cls, data, "subnet")

    def to_row(self) -> dict[str, Any]:
        """The subnet as the columns of a results table (trials.csv, rank.csv, latency tables):
        ``embed_dim``, ``depth`` and the per-layer lists as JSON text (one CSV cell each)."""
        data = self.to_dict()
        return {k: json.dumps(v) if isinstance(v, list) else v for k, v in data.items()}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> SubnetConfig:
        """The subnet in a table row written with :meth:`to_row` (other columns are ignored)."""
        return cls.from_dict(
            {
                "embed_dim": int(row["embed_dim"]),
                "depth": int(row["depth"]),
                "num_heads": json.loads(row["num_heads"]),
                "mlp_ratio": json.loads(row["mlp_ratio"]),
            }
        )

    def to_yaml(self, path: str | Path) -> None:
        _write_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SubnetConfig:
        data = _read_yaml(path, "subnet")
        if isinstance(data, Mapping) and "subnet" in data and "embed_dim" not in data:
            data = data["subnet"]  # an export's subnet.yaml nests the subnet beside the space
        return cls.from_dict(data)

    def __str__(self) -> str:
        heads = "/".join(map(str, self.num_heads))
        mlp = "/".join(f"{r:g}" for r in self.mlp_ratio)
        return f"D{self.embed_dim}-L{self.depth}-H[{heads}]-M[{mlp}]"


@dataclass(frozen=True)
class SearchSpace:
    """Elastic choices plus the geometry every subnet shares.

    ``head_dim`` is fixed (AutoFormer uses 64): a layer with ``h`` heads has a Q/K/V width of
    ``h * head_dim``, independent of the embedding width.
    """

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    head_dim: int = 64
    pool: Pool = "cls"
    pos_embed: PosEmbed = "learned"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for name in ("embed_dim", "depth", "num_heads", "mlp_ratio"):
            value = _as_tuple(getattr(self, name))
            if isinstance(value, tuple):
                if name == "mlp_ratio":
                    value = tuple(float(v) if _is_number(v) else v for v in value)
                value = tuple(sorted(value)) if all(_is_number(v) for v in value) else value
            object.__setattr__(self, name, value)
        problems: list[str] = []
        _check_choices("embed_dim", self.embed_dim, problems, integer=True)
        _check_choices("depth", self.depth, problems, integer=True)
        _check_choices("num_heads", self.num_heads, problems, integer=True)
        _check_choices("mlp_ratio", self.mlp_ratio, problems, integer=False)
        for name in ("img_size", "patch_size", "in_chans", "num_classes", "head_dim"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {quoted(value)}")
        geometry_ok = all(_is_int(v) and v >= 1 for v in (self.img_size, self.patch_size))
        if geometry_ok and (self.patch_size > self.img_size or self.img_size % self.patch_size):
            problems.append(
                f"patch_size {self.patch_size} does not divide img_size {self.img_size}"
            )
        if self.pool not in ("cls", "mean"):
            problems.append(f"pool must be 'cls' or 'mean', got {quoted(self.pool)}")
        if self.pos_embed not in ("learned", "sinusoidal"):
            problems.append(
                f"pos_embed must be 'learned' or 'sinusoidal', got {quoted(self.pos_embed)}"
            )
        if not problems:
            # Every width/ratio pair must give an MLP of at least one unit.
            narrowest = min(self.embed_dim)
            for r in self.mlp_ratio:
                if mlp_hidden_dim(narrowest, r) < 1:
                    problems.append(f"mlp_ratio {r:g} gives an empty MLP at embed_dim {narrowest}")
        if problems:
            raise SpaceError("search space", problems)

    # -- geometry --------------------------------------------------------------------------------
    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Tokens through every block: the patches, plus the CLS token when pooling by it."""
        return self.num_patches + (1 if self.pool == "cls" else 0)

    @property
    def max_depth(self) -> int:
        return max(self.depth)

    @property
    def max_embed_dim(self) -> int:
        return max(self.embed_dim)

    @property
    def max_num_heads(self) -> int:
        return max(self.num_heads)

    @property
    def max_qkv_dim(self) -> int:
        return self.max_num_heads * self.head_dim

    @property
    def max_mlp_hidden_dim(self) -> int:
        return max(mlp_hidden_dim(d, r) for d in self.embed_dim for r in self.mlp_ratio)

    # -- subnets ---------------------------------------------------------------------------------
    def validate(self, subnet: SubnetConfig) -> SubnetConfig:
        """Return ``subnet`` if this space holds it, else raise :class:`SpaceError` saying why."""
        if not isinstance(subnet, SubnetConfig):
            raise TypeError(f"expected a SubnetConfig, got {type(subnet).__name__}")
        problems: list[str] = []
        if subnet.embed_dim not in self.embed_dim:
            problems.append(
                f"embed_dim {subnet.embed_dim} is not a choice of this space "
                f"({_fmt(self.embed_dim)})"
            )
        if subnet.depth not in self.depth:
            problems.append(
                f"depth {subnet.depth} is not a choice of this space ({_fmt(self.depth)})"
            )
        for i, h in enumerate(subnet.num_heads):
            if h not in self.num_heads:
                problems.append(
                    f"num_heads[{i}] = {h} is not a choice of this space ({_fmt(self.num_heads)})"
                )
        for i, r in enumerate(subnet.mlp_ratio):
            if r not in self.mlp_ratio:
                problems.append(
                    f"mlp_ratio[{i}] = {r:g} is not a choice of this space "
                    f"({_fmt(f'{c:g}' for c in self.mlp_ratio)})"
                )
        if problems:
            raise SpaceError(
                "subnet for this space", problems, fix="give a subnet made of this space's choices"
            )
        return subnet

    def contains(self, subnet: SubnetConfig) -> bool:
        try:
            self.validate(subnet)
        except SpaceError:
            return False
        return True

    def smallest(self) -> SubnetConfig:
        d = min(self.depth)
        return SubnetConfig(
            min(self.embed_dim), d, (min(self.num_heads),) * d, (min(self.mlp_ratio),) * d
        )

    def largest(self) -> SubnetConfig:
        d = max(self.depth)
        return SubnetConfig(
            max(self.embed_dim), d, (max(self.num_heads),) * d, (max(self.mlp_ratio),) * d
        )

    def sample(self, rng: random.Random) -> SubnetConfig:
        """A uniformly random subnet: every dimension and every layer drawn independently."""
        d = rng.choice(self.depth)
        return SubnetConfig(
            embed_dim=rng.choice(self.embed_dim),
            depth=d,
            num_heads=tuple(rng.choice(self.num_heads) for _ in range(d)),
            mlp_ratio=tuple(rng.choice(self.mlp_ratio) for _ in range(d)),
        )

    def uniform(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: float) -> SubnetConfig:
        """The subnet with the same heads and MLP ratio in every layer (validated)."""
        subnet = SubnetConfig(embed_dim, depth, (num_heads,) * depth, (float(mlp_ratio),) * depth)
        return self.validate(subnet)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        if not self.name:
            del data["name"]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        return _from_mapping(cls, data, "search space")

    def to_yaml(self, path: str | Path) -> None:
        _write_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        data = _read_yaml(path, "search space")
        if isinstance(data, Mapping) and "space" in data and "embed_dim" not in data:
            data = data["space"]  # an export's subnet.yaml nests the space beside the subnet
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> SearchSpace:
        """A named preset from ``conf/space/`` (``autoformer_tiny``, ``digits``, ...)."""
        path = PRESETS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
            raise SpaceError("search space", [f"no preset {name!r}; presets: {_fmt(known)}"])
        return cls.from_yaml(path)

    def differences(self, other: SearchSpace) -> list[str]:
        """Names of the fields (``name`` excluded) in which two spaces differ."""
        return [
            f.name
            for f in dataclasses.fields(self)
            if f.compare and getattr(self, f.name) != getattr(other, f.name)
        ]
