"""The ViT family's search space: one typed source of truth for model, cost model, search and
export.

A :class:`SearchSpace` holds the elastic choices (embedding width, depth, per-layer head count and
per-layer MLP ratio) and the fixed geometry every subnet shares (image and patch size, channels,
classes, head width, pooling, position embedding, relative positions, LayerNorm epsilon). A
:class:`SubnetConfig` is one architecture; ``space.validate(subnet)`` says whether the space holds
it.

Both are frozen dataclasses, validated on construction, and round-trip through plain dicts and
YAML (``to_dict`` / ``from_dict`` / ``to_yaml`` / ``from_yaml``) with ``family: vit``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ..common.errors import quoted
from ..space import (
    Space,
    SpaceError,
    Subnet,
    as_tuple,
    check_choices,
    fmt,
    is_int,
    is_number,
    mlp_hidden_dim,
)

__all__ = ["SearchSpace", "SubnetConfig", "mlp_hidden_dim"]

Pool = Literal["cls", "mean", "cls_mean"]
PosEmbed = Literal["learned", "sinusoidal"]
RelPos = Literal["none", "autoformer"]

POOLS = ("cls", "mean", "cls_mean")
REL_POS = ("none", "autoformer")


def _is_float_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _middle(choices: tuple[int, ...] | tuple[float, ...]) -> int | float:
    return sorted(choices)[(len(choices) - 1) // 2]  # the lower median


#: How a ViT subnet is written, for the errors about one.
SUBNET_FORMAT = (
    "a ViT subnet is embed_dim: <int>, depth: <int>, and num_heads and mlp_ratio with one entry "
    "per layer (supernet/conf/subnets/autoformer_t.yaml is one)"
)


@dataclass(frozen=True)
class SubnetConfig(Subnet):
    """One architecture of a ViT space: width, depth and, per active layer, heads and MLP ratio."""

    family: ClassVar[str] = "vit"
    row_columns: ClassVar[tuple[str, ...]] = ("embed_dim", "depth", "num_heads", "mlp_ratio")
    row_json_columns: ClassVar[tuple[str, ...]] = ("num_heads", "mlp_ratio")
    reads_any_family: ClassVar[bool] = True  # the front door of code older than families

    embed_dim: int
    depth: int
    num_heads: tuple[int, ...]
    mlp_ratio: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_heads", as_tuple(self.num_heads))
        mlp = as_tuple(self.mlp_ratio)
        if isinstance(mlp, tuple):
            mlp = tuple(float(r) if is_number(r) else r for r in mlp)
        object.__setattr__(self, "mlp_ratio", mlp)
        problems: list[str] = []
        if not is_int(self.embed_dim) or self.embed_dim < 1:
            problems.append(f"embed_dim must be a positive integer, got {quoted(self.embed_dim)}")
        if not is_int(self.depth) or self.depth < 1:
            problems.append(f"depth must be a positive integer, got {quoted(self.depth)}")
        for name in ("num_heads", "mlp_ratio"):
            values = getattr(self, name)
            if not isinstance(values, tuple):
                problems.append(
                    f"{name} must be a list with one entry per layer, got {quoted(values)}"
                )
            elif is_int(self.depth) and len(values) != self.depth:
                problems.append(
                    f"{name} has {len(values)} entries but depth is {self.depth}: "
                    "give one entry per active layer"
                )
        if isinstance(self.num_heads, tuple) and not all(
            is_int(h) and h >= 1 for h in self.num_heads
        ):
            problems.append(f"num_heads must hold positive integers, got {list(self.num_heads)}")
        if isinstance(self.mlp_ratio, tuple) and not all(
            is_number(r) and r > 0 for r in self.mlp_ratio
        ):
            problems.append(f"mlp_ratio must hold positive numbers, got {list(self.mlp_ratio)}")
        if problems:
            raise SpaceError("subnet", problems, fix=SUBNET_FORMAT)

    # -- derived sizes ---------------------------------------------------------------------------
    def mlp_hidden_dims(self) -> tuple[int, ...]:
        return tuple(mlp_hidden_dim(self.embed_dim, r) for r in self.mlp_ratio)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": list(self.num_heads),
            "mlp_ratio": list(self.mlp_ratio),
        }

    def to_row(self) -> dict[str, Any]:
        """The subnet as the columns of a results table (trials.csv, rank.csv, latency tables):
        ``embed_dim``, ``depth`` and the per-layer lists as JSON text (one CSV cell each)."""
        data = self.to_dict()
        del data["family"]
        return {k: json.dumps(v) if isinstance(v, list) else v for k, v in data.items()}

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> SubnetConfig:
        return cls._from_fields(
            {
                "embed_dim": int(row["embed_dim"]),
                "depth": int(row["depth"]),
                "num_heads": json.loads(row["num_heads"]),
                "mlp_ratio": json.loads(row["mlp_ratio"]),
            }
        )

    def __str__(self) -> str:
        heads = "/".join(map(str, self.num_heads))
        mlp = "/".join(f"{r:g}" for r in self.mlp_ratio)
        return f"D{self.embed_dim}-L{self.depth}-H[{heads}]-M[{mlp}]"


@dataclass(frozen=True)
class SearchSpace(Space):
    """The ViT family's elastic choices plus the geometry every subnet shares.

    ``head_dim`` is fixed (AutoFormer uses 64): a layer with ``h`` heads has a Q/K/V width of
    ``h * head_dim``, independent of the embedding width.

    Pooling: ``cls`` (a CLS token, read by the classifier), ``mean`` (no CLS token, mean of the
    patch tokens) or ``cls_mean`` (a CLS token in the sequence, the classifier reads the mean of
    the patch tokens: AutoFormer's ``--gp``). ``rel_pos="autoformer"`` adds AutoFormer's 2-D
    relative position encoding to every block (tables indexed by row and column distance, clamped
    to ``rel_pos_max_distance``; see :mod:`supernet.vit.relpos`). ``norm_eps`` is every
    LayerNorm's epsilon (AutoFormer's is torch's default, 1e-5).
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
    rel_pos: RelPos = "none"
    rel_pos_max_distance: int = 14
    norm_eps: float = 1e-6
    name: str = field(default="", compare=False)

    family: ClassVar[str] = "vit"
    subnet_cls: ClassVar[type[Subnet]] = SubnetConfig
    reads_any_family: ClassVar[bool] = True  # the front door of code older than families

    def __post_init__(self) -> None:
        for name in ("embed_dim", "depth", "num_heads", "mlp_ratio"):
            value = as_tuple(getattr(self, name))
            if isinstance(value, tuple):
                if name == "mlp_ratio":
                    value = tuple(float(v) if is_number(v) else v for v in value)
                value = tuple(sorted(value)) if all(is_number(v) for v in value) else value
            object.__setattr__(self, name, value)
        if is_number(self.norm_eps):
            object.__setattr__(self, "norm_eps", float(self.norm_eps))
        problems: list[str] = []
        check_choices("embed_dim", self.embed_dim, problems, integer=True)
        check_choices("depth", self.depth, problems, integer=True)
        check_choices("num_heads", self.num_heads, problems, integer=True)
        check_choices("mlp_ratio", self.mlp_ratio, problems, integer=False)
        for name in ("img_size", "patch_size", "in_chans", "num_classes", "head_dim"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {quoted(value)}")
        geometry_ok = all(is_int(v) and v >= 1 for v in (self.img_size, self.patch_size))
        if geometry_ok and (self.patch_size > self.img_size or self.img_size % self.patch_size):
            problems.append(
                f"patch_size {self.patch_size} does not divide img_size {self.img_size}"
            )
        if self.pool not in POOLS:
            problems.append(f"pool must be 'cls', 'mean' or 'cls_mean', got {quoted(self.pool)}")
        if self.pos_embed not in ("learned", "sinusoidal"):
            problems.append(
                f"pos_embed must be 'learned' or 'sinusoidal', got {quoted(self.pos_embed)}"
            )
        if self.rel_pos not in REL_POS:
            problems.append(f"rel_pos must be 'none' or 'autoformer', got {quoted(self.rel_pos)}")
        elif self.rel_pos == "autoformer" and self.pool == "mean":
            problems.append(
                "rel_pos 'autoformer' needs the CLS token (its tables' first row is for the pairs "
                "that involve it): use pool 'cls_mean' (AutoFormer's) or 'cls'"
            )
        distance = self.rel_pos_max_distance
        if not is_int(distance) or distance < 1:
            problems.append(
                f"rel_pos_max_distance must be a positive integer, got {quoted(distance)}"
            )
        if not is_number(self.norm_eps) or self.norm_eps <= 0:
            hint = (
                f" (YAML reads {self.norm_eps} as text: write it with a decimal point, e.g. 1.0e-5)"
                if isinstance(self.norm_eps, str) and _is_float_text(self.norm_eps)
                else ""
            )
            problems.append(
                f"norm_eps must be a positive number, got {quoted(self.norm_eps)}{hint}"
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
    def has_cls_token(self) -> bool:
        """Whether the sequence holds a CLS token (pool ``cls`` or ``cls_mean``)."""
        return self.pool != "mean"

    @property
    def num_tokens(self) -> int:
        """Tokens through every block: the patches, plus the CLS token if there is one."""
        return self.num_patches + (1 if self.has_cls_token else 0)

    @property
    def rel_pos_table_rows(self) -> int:
        """Rows of each relative-position table: distances -max..max, shifted by one, and row 0
        for the pairs that involve the CLS token (0 without relative positions)."""
        return 2 * self.rel_pos_max_distance + 2 if self.rel_pos == "autoformer" else 0

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
    def validate(self, subnet: Subnet) -> SubnetConfig:
        """Return ``subnet`` if this space holds it, else raise :class:`SpaceError` saying why."""
        self.check_family(subnet)
        assert isinstance(subnet, SubnetConfig)
        problems: list[str] = []
        if subnet.embed_dim not in self.embed_dim:
            problems.append(
                f"embed_dim {subnet.embed_dim} is not a choice of this space "
                f"({fmt(self.embed_dim)})"
            )
        if subnet.depth not in self.depth:
            problems.append(
                f"depth {subnet.depth} is not a choice of this space ({fmt(self.depth)})"
            )
        for i, h in enumerate(subnet.num_heads):
            if h not in self.num_heads:
                problems.append(
                    f"num_heads[{i}] = {h} is not a choice of this space ({fmt(self.num_heads)})"
                )
        for i, r in enumerate(subnet.mlp_ratio):
            if r not in self.mlp_ratio:
                problems.append(
                    f"mlp_ratio[{i}] = {r:g} is not a choice of this space "
                    f"({fmt(f'{c:g}' for c in self.mlp_ratio)})"
                )
        if problems:
            raise SpaceError(
                "subnet for this space", problems, fix="give a subnet made of this space's choices"
            )
        return subnet

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

    def middle(self) -> SubnetConfig:
        """The (lower) median choice of every dimension, in every layer."""
        return self.uniform(
            int(_middle(self.embed_dim)),
            int(_middle(self.depth)),
            int(_middle(self.num_heads)),
            float(_middle(self.mlp_ratio)),
        )

    def count_subnets(self) -> int:
        per_layer = len(self.num_heads) * len(self.mlp_ratio)
        return len(self.embed_dim) * sum(per_layer**d for d in self.depth)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"family": self.family}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = list(value) if isinstance(value, tuple) else value
        if not self.name:
            del data["name"]
        return data
