"""The Swin family's search space: hierarchical stages, per-stage widths and depths, per-block
heads, MLP ratios and windows.

A :class:`SwinSpace` holds the elastic choices of every stage (width ``C_s`` and depth ``d_s``;
per block: heads, MLP ratio and window) and the geometry every subnet shares (image and patch
size, channels, classes, ``head_dim``, the number of stages, ``shift``). Stage ``s`` sees a
``R_s x R_s`` map with ``R_s = (img_size / patch_size) / 2**s``: a patch merging halves the map
and sets the width between stages. A :class:`SwinSubnet` is one architecture;
``space.validate(subnet)`` says whether the space holds it.

Windows are canonical: a window at least as large as its stage's map is one window over the
whole map with no shift (timm clamps it the same way), so the space turns every such choice into
``R_s``. ``sample`` then never draws two names for one network, and a subnet must write the
clamped value (``validate`` says so otherwise).

Both are frozen, hashable dataclasses (tuples inside), validated on construction, and round-trip
through plain dicts, YAML and table rows. Their dicts carry ``family: swin``.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable, Mapping, Sequence
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

__all__ = ["FAMILY_NAME", "Shift", "SwinSpace", "SwinSubnet"]

#: The name of this family in YAML files, checkpoints and exports (``family: swin``).
FAMILY_NAME = "swin"

Shift = Literal["alternate", "none"]

#: The per-block fields of a subnet, in the order they appear in dicts and names.
BLOCK_FIELDS = ("num_heads", "mlp_ratio", "window_size")


def _floats(values: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(float(v) if is_number(v) else v for v in values)  # type: ignore[arg-type]


def _run_length(values: Sequence[object]) -> str:
    """``4/4/3.5`` as ``4*2/3.5``: runs of one value written once with their length."""
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        text = f"{values[i]:g}" if isinstance(values[i], float) else str(values[i])
        parts.append(text if j - i == 1 else f"{text}*{j - i}")
        i = j
    return "/".join(parts)


#: How a Swin subnet is written, for the errors about one.
SUBNET_FORMAT = (
    "a Swin subnet is embed_dim and depth with one entry per stage, and num_heads, mlp_ratio and "
    "window_size with one list per stage holding one entry per active block (an export's "
    "subnet.yaml shows one)"
)


@dataclass(frozen=True)
class SwinSubnet(Subnet):
    """One Swin architecture: per stage a width and a depth; per active block heads, MLP ratio
    and window.

    ``num_heads[s][j]``, ``mlp_ratio[s][j]`` and ``window_size[s][j]`` belong to block ``j`` of
    stage ``s``; each stage lists exactly ``depth[s]`` of them.
    """

    family: ClassVar[str] = FAMILY_NAME
    row_columns: ClassVar[tuple[str, ...]] = ("embed_dim", "depth", *BLOCK_FIELDS)
    row_json_columns: ClassVar[tuple[str, ...]] = row_columns

    embed_dim: tuple[int, ...]
    depth: tuple[int, ...]
    num_heads: tuple[tuple[int, ...], ...]
    mlp_ratio: tuple[tuple[float, ...], ...]
    window_size: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "embed_dim", as_tuple(self.embed_dim))
        object.__setattr__(self, "depth", as_tuple(self.depth))
        for name in BLOCK_FIELDS:
            value = as_tuple(getattr(self, name))
            if isinstance(value, tuple):
                value = tuple(as_tuple(v) for v in value)
                if name == "mlp_ratio":
                    value = tuple(_floats(v) if isinstance(v, tuple) else v for v in value)
            object.__setattr__(self, name, value)
        problems: list[str] = []
        stages_ok = True
        for name in ("embed_dim", "depth"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not values:
                problems.append(f"{name} must be a non-empty list with one entry per stage")
                stages_ok = False
            elif not all(is_int(v) and v >= 1 for v in values):
                problems.append(f"{name} must hold positive integers, got {list(values)}")
                stages_ok = False
        if stages_ok and len(self.depth) != len(self.embed_dim):
            problems.append(
                f"depth has {len(self.depth)} stages but embed_dim has {len(self.embed_dim)}"
            )
            stages_ok = False
        for name in BLOCK_FIELDS:
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(isinstance(v, tuple) for v in values):
                problems.append(
                    f"{name} must be a list with one list per stage (one entry per active "
                    f"block), got {quoted(values)}"
                )
                continue
            if stages_ok and len(values) != len(self.depth):
                problems.append(f"{name} has {len(values)} stages but depth has {len(self.depth)}")
            elif stages_ok:
                for s, (stage, d) in enumerate(zip(values, self.depth, strict=True)):
                    if len(stage) != d:
                        problems.append(
                            f"{name}[{s}] has {len(stage)} entries but depth[{s}] is {d}: "
                            "give one entry per active block"
                        )
            if name == "mlp_ratio":
                bad = [v for stage in values for v in stage if not (is_number(v) and v > 0)]
                if bad:
                    problems.append(f"mlp_ratio must hold positive numbers, got {fmt(bad)}")
            else:
                bad = [v for stage in values for v in stage if not (is_int(v) and v >= 1)]
                if bad:
                    problems.append(f"{name} must hold positive integers, got {fmt(bad)}")
        if problems:
            raise SpaceError("subnet", problems, fix=SUBNET_FORMAT)

    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.depth)

    def mlp_hidden_dims(self) -> tuple[tuple[int, ...], ...]:
        """Each active block's MLP width, ``int(C_s * ratio)``, per stage."""
        return tuple(
            tuple(mlp_hidden_dim(c, r) for r in ratios)
            for c, ratios in zip(self.embed_dim, self.mlp_ratio, strict=True)
        )

    def blocks(self, stage: int) -> list[tuple[int, float, int]]:
        """``(num_heads, mlp_ratio, window_size)`` of each active block of ``stage``."""
        return list(
            zip(
                self.num_heads[stage],
                self.mlp_ratio[stage],
                self.window_size[stage],
                strict=True,
            )
        )

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "family": FAMILY_NAME,
            "embed_dim": list(self.embed_dim),
            "depth": list(self.depth),
            **{name: [list(stage) for stage in getattr(self, name)] for name in BLOCK_FIELDS},
        }

    def to_row(self) -> dict[str, Any]:
        """The subnet as results-table columns: ``embed_dim``, ``depth`` and the per-block lists,
        each as JSON text (one CSV cell each)."""
        data = self.to_dict()
        del data["family"]
        return {k: json.dumps(v) for k, v in data.items()}

    @classmethod
    def _from_row(cls, row: Mapping[str, Any]) -> SwinSubnet:
        """The subnet in a table row written with :meth:`to_row` (other columns are ignored)."""
        names = ("embed_dim", "depth", *BLOCK_FIELDS)
        missing = [n for n in names if n not in row]
        if missing:
            raise SpaceError("subnet", [f"the row has no column(s) {fmt(missing)}"])
        data: dict[str, Any] = {}
        for name in names:
            value = row[name]
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    raise SpaceError(
                        "subnet", [f"column {name} is not a JSON list: {quoted(value)}"]
                    ) from None
            data[name] = value
        return cls._from_fields(data)

    def __str__(self) -> str:
        """A short name: ``C96-192_D2-6_H[3*2|6*6]_M[4*2|4*5/3.5]_W[7*2|7/14*5]``.

        ``C``/``D`` are the stage widths and depths; ``H``, ``M``, ``W`` list each stage's blocks
        (stages split by ``|``, blocks by ``/``, ``x*n`` is ``x`` repeated ``n`` times).
        """
        parts = [
            "C" + "-".join(map(str, self.embed_dim)),
            "D" + "-".join(map(str, self.depth)),
        ]
        for tag, name in zip("HMW", BLOCK_FIELDS, strict=True):
            stages = "|".join(_run_length(stage) for stage in getattr(self, name))
            parts.append(f"{tag}[{stages}]")
        return "_".join(parts)


@dataclass(frozen=True)
class SwinSpace(Space):
    """Per-stage elastic choices plus the geometry every subnet shares.

    Every elastic field holds one tuple of choices per stage: ``embed_dim[s]`` and ``depth[s]``
    for the stage, ``num_heads[s]``, ``mlp_ratio[s]`` and ``window_size[s]`` for each of its
    blocks. ``mlp_ratio`` may be given as one flat list shared by all stages. ``head_dim`` is
    fixed: a block with ``h`` heads has a Q/K/V width of ``h * head_dim``, independent of
    ``C_s``. ``shift="alternate"`` shifts the windows of odd blocks by half a window (Swin's
    SW-MSA); ``"none"`` never shifts.
    """

    family: ClassVar[str] = FAMILY_NAME

    embed_dim: tuple[tuple[int, ...], ...]
    depth: tuple[tuple[int, ...], ...]
    num_heads: tuple[tuple[int, ...], ...]
    mlp_ratio: tuple[tuple[float, ...], ...]
    window_size: tuple[tuple[int, ...], ...]
    img_size: int = 224
    patch_size: int = 4
    in_chans: int = 3
    num_classes: int = 1000
    head_dim: int = 32
    shift: Shift = "alternate"
    name: str = field(default="", compare=False)

    subnet_cls: ClassVar[type[Subnet]] = SwinSubnet

    def __post_init__(self) -> None:
        problems: list[str] = []
        embed = as_tuple(self.embed_dim)
        n_stages = len(embed) if isinstance(embed, tuple) and embed else None
        for name in ("embed_dim", "depth", "num_heads", "mlp_ratio", "window_size"):
            value = as_tuple(getattr(self, name))
            if (
                name == "mlp_ratio"
                and isinstance(value, tuple)
                and value
                and all(is_number(v) for v in value)
                and n_stages is not None
            ):
                value = (value,) * n_stages  # one flat list shared by every stage
            value = self._normalise_stages(name, value, problems)
            object.__setattr__(self, name, value)
        for name in ("img_size", "patch_size", "in_chans", "num_classes", "head_dim"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                problems.append(f"{name} must be a positive integer, got {quoted(value)}")
        if self.shift not in ("alternate", "none"):
            problems.append(f"shift must be 'alternate' or 'none', got {quoted(self.shift)}")
        if problems:
            raise SpaceError("search space", problems)
        n = len(self.embed_dim)
        for name in ("depth", "num_heads", "mlp_ratio", "window_size"):
            if len(getattr(self, name)) != n:
                problems.append(
                    f"{name} has {len(getattr(self, name))} stages but embed_dim has {n}"
                )
        if self.patch_size > self.img_size or self.img_size % self.patch_size:
            problems.append(
                f"patch_size {self.patch_size} does not divide img_size {self.img_size}"
            )
        else:
            grid, factor = self.img_size // self.patch_size, 2 ** (n - 1)
            if grid % factor:
                problems.append(
                    f"the {grid}x{grid} patch grid cannot be halved into even maps {n - 1} "
                    f"time(s): with {n} stages, img_size / patch_size must be a multiple of "
                    f"{factor}"
                )
        if not problems:
            for s, (widths, ratios) in enumerate(zip(self.embed_dim, self.mlp_ratio, strict=True)):
                for r in ratios:
                    if mlp_hidden_dim(min(widths), r) < 1:
                        problems.append(
                            f"mlp_ratio {r:g} gives an empty MLP at stage {s}'s embed_dim "
                            f"{min(widths)}"
                        )
        if problems:
            raise SpaceError("search space", problems)
        # Canonical windows: every choice >= the stage's map is the one whole-map window.
        canonical = tuple(
            tuple(sorted({min(w, self.stage_resolution(s)) for w in windows}))
            for s, windows in enumerate(self.window_size)
        )
        object.__setattr__(self, "window_size", canonical)

    @staticmethod
    def _normalise_stages(name: str, value: object, problems: list[str]) -> Any:
        """One sorted tuple of choices per stage; problems are appended, the value kept."""
        integer = name != "mlp_ratio"
        if not isinstance(value, tuple) or not value:
            problems.append(f"{name} must be a non-empty list with one list of choices per stage")
            return value
        if not all(isinstance(as_tuple(v), tuple) for v in value):
            example = "[[3, 4], [6, 8]]" if integer else "[[3.5, 4.0], [4.0]] or [3.5, 4.0]"
            problems.append(
                f"{name} must be one list of choices per stage (e.g. {example}), got "
                f"{quoted(list(value))}"
            )
            return value
        stages = []
        for s, choices in enumerate(value):
            choices = as_tuple(choices)
            if not integer:
                choices = _floats(choices)  # type: ignore[arg-type]
            check_choices(f"{name}[{s}]", choices, problems, integer=integer)
            if all(is_number(c) for c in choices):  # type: ignore[union-attr]
                choices = tuple(sorted(choices))  # type: ignore[arg-type]
            stages.append(choices)
        return tuple(stages)

    # -- geometry --------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.embed_dim)

    @property
    def grid_size(self) -> int:
        """Side of the patch grid, the map of stage 0."""
        return self.img_size // self.patch_size

    def stage_resolution(self, stage: int) -> int:
        """Side of stage ``stage``'s (square) feature map."""
        if not 0 <= stage < self.num_stages:
            raise IndexError(f"stage {stage} out of range for {self.num_stages} stages")
        return self.grid_size >> stage

    def max_embed_dim(self, stage: int) -> int:
        return max(self.embed_dim[stage])

    def max_depth(self, stage: int) -> int:
        return max(self.depth[stage])

    def max_num_heads(self, stage: int) -> int:
        return max(self.num_heads[stage])

    def max_qkv_dim(self, stage: int) -> int:
        return self.max_num_heads(stage) * self.head_dim

    def max_mlp_hidden_dim(self, stage: int) -> int:
        return max(
            mlp_hidden_dim(c, r) for c in self.embed_dim[stage] for r in self.mlp_ratio[stage]
        )

    def max_window(self, stage: int) -> int:
        """The largest (canonical, so effective) window of ``stage``: what its bias tables hold."""
        return max(self.window_size[stage])

    # -- subnets ---------------------------------------------------------------------------------
    def validate(self, subnet: Subnet) -> SwinSubnet:
        """Return ``subnet`` if this space holds it, else raise :class:`SpaceError` saying why."""
        self.check_family(subnet)
        assert isinstance(subnet, SwinSubnet)
        if subnet.num_stages != self.num_stages:
            raise SpaceError(
                "subnet for this space",
                [
                    f"the subnet has {subnet.num_stages} stage(s) but this space has "
                    f"{self.num_stages}"
                ],
            )
        problems: list[str] = []
        for s in range(self.num_stages):
            for name in ("embed_dim", "depth"):
                value, choices = getattr(subnet, name)[s], getattr(self, name)[s]
                if value not in choices:
                    problems.append(
                        f"{name}[{s}] = {value} is not a choice of stage {s} ({fmt(choices)})"
                    )
            for name in BLOCK_FIELDS:
                choices = getattr(self, name)[s]
                for j, value in enumerate(getattr(subnet, name)[s]):
                    if value in choices:
                        continue
                    text = f"{value:g}" if name == "mlp_ratio" else str(value)
                    shown = fmt(f"{c:g}" for c in choices) if name == "mlp_ratio" else fmt(choices)
                    problem = (
                        f"{name}[{s}][{j}] = {text} is not a choice of stage {s} block {j} "
                        f"({shown})"
                    )
                    r = self.stage_resolution(s)
                    if name == "window_size" and value > r:
                        problem += (
                            f"; stage {s}'s map is {r}x{r}, so a window that covers it is "
                            f"written {r}"
                        )
                    problems.append(problem)
        if problems:
            raise SpaceError(
                "subnet for this space", problems, fix="give a subnet made of this space's choices"
            )
        return subnet

    def _pick_all(self, index: Callable[[tuple[Any, ...]], Any]) -> SwinSubnet:
        """The subnet taking ``choices[index(choices)]`` in every dimension of every stage."""
        depth = tuple(index(d) for d in self.depth)
        return SwinSubnet(
            embed_dim=tuple(index(c) for c in self.embed_dim),
            depth=depth,
            num_heads=tuple((index(h),) * d for h, d in zip(self.num_heads, depth, strict=True)),
            mlp_ratio=tuple((index(r),) * d for r, d in zip(self.mlp_ratio, depth, strict=True)),
            window_size=tuple(
                (index(w),) * d for w, d in zip(self.window_size, depth, strict=True)
            ),
        )

    def smallest(self) -> SwinSubnet:
        return self._pick_all(lambda choices: choices[0])

    def largest(self) -> SwinSubnet:
        return self._pick_all(lambda choices: choices[-1])

    def middle(self) -> SwinSubnet:
        """The middle choice of every dimension (the lower middle of an even count)."""
        return self._pick_all(lambda choices: choices[(len(choices) - 1) // 2])

    def sample(self, rng: random.Random) -> SwinSubnet:
        """A random subnet: each stage's width and depth, and each block's heads, MLP ratio and
        window, drawn independently and uniformly from their choices."""
        embed_dim, depth, heads, ratios, windows = [], [], [], [], []
        for s in range(self.num_stages):
            embed_dim.append(rng.choice(self.embed_dim[s]))
            d = rng.choice(self.depth[s])
            depth.append(d)
            blocks = [
                (
                    rng.choice(self.num_heads[s]),
                    rng.choice(self.mlp_ratio[s]),
                    rng.choice(self.window_size[s]),
                )
                for _ in range(d)
            ]
            heads.append(tuple(b[0] for b in blocks))
            ratios.append(tuple(b[1] for b in blocks))
            windows.append(tuple(b[2] for b in blocks))
        return SwinSubnet(
            tuple(embed_dim), tuple(depth), tuple(heads), tuple(ratios), tuple(windows)
        )

    def count_subnets(self) -> int:
        """How many distinct subnets this space holds (windows counted after collapsing)."""
        total = 1
        for s in range(self.num_stages):
            per_block = len(self.num_heads[s]) * len(self.mlp_ratio[s]) * len(self.window_size[s])
            total *= len(self.embed_dim[s]) * sum(per_block**d for d in self.depth[s])
        return total

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"family": FAMILY_NAME}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [list(stage) for stage in value]
            data[f.name] = value
        if not self.name:
            del data["name"]
        return data
