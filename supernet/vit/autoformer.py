"""AutoFormer (microsoft/Cream ``AutoFormer/model/``) checkpoints as this family's models.

AutoFormer saves its supernet's state dict (under ``model``, sometimes with ``module.`` prefixes),
in training (``--mode super``) and in retraining (``--mode retrain``, which trains one subnet
inside the same supernet-shaped model), with the released configuration ``--relative_position
--gp --change_qkv``. Its names and layouts, and what they become here:

=================================================  ============================================
AutoFormer                                         this family's standalone model
=================================================  ============================================
``patch_embed_super.proj.{weight,bias}``            ``patch_embed.proj.*``
``cls_token``, ``pos_embed``                        the same
``blocks.N.attn_layer_norm``, ``ffn_layer_norm``    ``blocks.N.norm1``, ``norm2``
``blocks.N.attn.qkv.weight`` (rows q,k,v of         ``blocks.N.attn.qkv.weight`` (rows
feature j at 3j, 3j+1, 3j+2)                        ``[q | k | v]``): a permutation
``blocks.N.attn.qkv.bias`` (contiguous:             ``blocks.N.attn.qkv.bias`` (see below)
the first 3Q entries are q|k|v at width Q)
``blocks.N.attn.proj``, ``fc1``, ``fc2``            ``blocks.N.attn.proj``, ``mlp.fc1``, ``mlp.fc2``
``blocks.N.attn.rel_pos_embed_{k,v}.                ``blocks.N.attn.rel_pos_{k,v}.row_table``,
embeddings_table_{v,h}`` (v: vertical = row         ``col_table``
distance, h: horizontal = column distance)
``norm``, ``head``                                  the same
=================================================  ============================================

Every weight is cut to the target's sizes by leading slices, as AutoFormer cuts them (weight
entanglement), so a supernet stored wider than the space is sliced to the space's largest subnet
exactly. The one thing no slice can reproduce is the Q/K/V bias: AutoFormer takes its first 3Q
entries as q|k|v, so an entry is a k bias at one head count and a q bias at another (Cream issue
#121). q's bias is the same at every head count; k's cancels in the softmax; v's is exact at one
head count per layer only. A subnet checkpoint's bias is exact (its head counts are known); a
supernet's is made exact for ``bias_heads`` (per layer; by default the space's largest count).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common.errors import CheckpointError
from ..common.torchfile import ReadError, load_torch_file
from ..space import PRESETS_DIR, Space, SpaceError
from .model import VisionTransformer
from .space import SearchSpace, SubnetConfig
from .supernet import VitSupernet

__all__ = [
    "PRESETS",
    "SUBNETS_DIR",
    "Conversion",
    "ConversionError",
    "Layout",
    "convert",
    "load_state_dict",
    "read_layout",
    "released_subnet",
    "resolve_subnet",
    "standalone_state",
]

#: The presets of AutoFormer's released configuration, smallest first.
PRESETS = ("autoformer_tiny_rpe", "autoformer_small_rpe", "autoformer_base_rpe")

#: The released subnets (AutoFormer-T, -S, -B) as subnet YAML files.
SUBNETS_DIR = PRESETS_DIR.parent / "subnets"

_TOP = {
    "patch_embed_super.proj.weight",
    "patch_embed_super.proj.bias",
    "cls_token",
    "pos_embed",
    "norm.weight",
    "norm.bias",
    "head.weight",
    "head.bias",
}
_TABLES = tuple(
    f"attn.rel_pos_embed_{part}.embeddings_table_{axis}" for part in "kv" for axis in "vh"
)
_BLOCK = {
    "attn_layer_norm.weight",
    "attn_layer_norm.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    *_TABLES,
    "ffn_layer_norm.weight",
    "ffn_layer_norm.bias",
    "fc1.weight",
    "fc1.bias",
    "fc2.weight",
    "fc2.bias",
}
_BLOCK_KEY = re.compile(r"blocks\.(\d+)\.(.+)")
_LIST = 4  # names shown in a message before "..."


class ConversionError(CheckpointError):
    """A file that cannot be read as an AutoFormer checkpoint, or does not fit the space."""


def _names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_LIST])
    return shown + (f" and {len(items) - _LIST} more" if len(items) > _LIST else "")


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


# -- reading ---------------------------------------------------------------------------------------
def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of an AutoFormer checkpoint file, read with ``weights_only=True``.

    Takes the ``model`` entry when there is one (a training checkpoint's ``args``, an
    ``argparse.Namespace`` of plain values, is allowed), else the file itself; strips
    ``module.`` prefixes.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise ConversionError(
                f"{path} is a directory; give the checkpoint file inside it (AutoFormer's "
                "releases are .pth files, e.g. supernet-tiny.pth)"
            )
        raise ConversionError(
            f"AutoFormer checkpoint not found: {path}; check the path (AutoFormer's releases are "
            ".pth files, e.g. supernet-tiny.pth)"
        )
    try:
        payload = load_torch_file(path, safe_globals=[argparse.Namespace])
    except ReadError as exc:
        raise ConversionError(
            f"{exc}; give a checkpoint saved by AutoFormer (a state dict, or a dict with one "
            "under 'model'; a damaged download: download or copy it again)"
        ) from None
    if isinstance(payload, Mapping) and isinstance(payload.get("model"), Mapping):
        payload = payload["model"]
    if not isinstance(payload, Mapping) or not payload:
        raise ConversionError(
            f"{path} holds no state dict ({type(payload).__name__}); give an AutoFormer "
            "checkpoint: a dict of tensors, or a dict with one under 'model'"
        )
    not_tensors = [str(k) for k, v in payload.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        kinds = {type(payload[k]).__name__ for k in payload if str(k) in not_tensors}
        raise ConversionError(
            f"{path} is not a state dict: {_names(not_tensors)} hold(s) {', '.join(sorted(kinds))}"
            ", not tensors; give an AutoFormer checkpoint (a dict of tensors, or one under "
            "'model')"
        )
    return {str(k).removeprefix("module."): v for k, v in payload.items()}


@dataclass(frozen=True)
class Layout:
    """What a checkpoint's shapes say: geometry, stored sizes per block, relative positions."""

    embed_dim: int
    depth: int
    qkv_dims: tuple[int, ...]
    mlp_dims: tuple[int, ...]
    in_chans: int
    patch_size: int
    img_size: int
    num_classes: int
    qkv_bias: bool
    max_distance: int | None  # None: no relative-position tables
    table_width: int | None

    def describe(self) -> str:
        uniform = len(set(self.qkv_dims)) == 1 and len(set(self.mlp_dims)) == 1
        widths = (
            f"Q/K/V width {self.qkv_dims[0]}, MLP {self.mlp_dims[0]}"
            if uniform
            else f"Q/K/V widths {'/'.join(map(str, self.qkv_dims))}, MLP "
            f"{'/'.join(map(str, self.mlp_dims))}"
        )
        rel = (
            f"relative positions up to distance {self.max_distance}"
            if self.max_distance is not None
            else "no relative positions"
        )
        return (
            f"{self.depth} blocks of width {self.embed_dim}, {widths}, {rel}; "
            f"{self.img_size} px in patches of {self.patch_size}, {self.num_classes} classes"
        )


def read_layout(state: Mapping[str, torch.Tensor], path: str | Path = "checkpoint") -> Layout:
    """Check ``state``'s names and shapes against AutoFormer's ViT and read its sizes."""
    blocks: dict[int, set[str]] = {}
    unknown = []
    for key in state:
        match = _BLOCK_KEY.fullmatch(key)
        if match and match.group(2) in _BLOCK:
            blocks.setdefault(int(match.group(1)), set()).add(match.group(2))
        elif key not in _TOP:
            unknown.append(key)
    if unknown:
        raise ConversionError(
            f"{path} is not an AutoFormer ViT checkpoint: unknown key(s) {_names(unknown)}; "
            "expected AutoFormer's names (patch_embed_super.proj.weight, blocks.<n>.attn.qkv."
            "weight, ...)"
        )
    missing = sorted(_TOP - set(state))
    depth = max(blocks, default=-1) + 1
    if depth == 0:
        missing.append("blocks.0.*")
    with_tables = {i for i, names in blocks.items() if set(_TABLES) & names}
    for i in range(depth):
        needed = _BLOCK - {"attn.qkv.bias"} - (set() if with_tables else set(_TABLES))
        missing += [f"blocks.{i}.{name}" for name in sorted(needed - blocks.get(i, set()))]
    if missing == ["pos_embed"]:  # whole but for it: trained with --no_abs_pos
        raise ConversionError(
            f"{path} has no absolute position embedding (AutoFormer's --no_abs_pos), which this "
            "tool's ViT always has; convert a checkpoint trained with it"
        )
    if missing:
        raise ConversionError(
            f"{path} is not a whole AutoFormer ViT checkpoint: missing key(s) {_names(missing)}; "
            "give the whole file AutoFormer saved (a partial download: download it again)"
        )
    with_bias = {i for i, names in blocks.items() if "attn.qkv.bias" in names}
    if with_bias and len(with_bias) != depth:
        raise ConversionError(
            f"{path}: only some blocks have attn.qkv.bias; a checkpoint has it in every block "
            "(qkv_bias=True) or in none"
        )

    def expect(key: str, *shape: int) -> torch.Tensor:
        tensor = state[key]
        if tuple(tensor.shape) != shape or not tensor.is_floating_point():
            raise ConversionError(
                f"{path}: {key} is a {tensor.dtype} tensor of shape {_shape(tensor)}, expected "
                f"floats of shape ({', '.join(map(str, shape))}); the file is not a consistent "
                "AutoFormer ViT checkpoint"
            )
        return tensor

    patch = state["patch_embed_super.proj.weight"]
    if patch.ndim != 4 or patch.shape[2] != patch.shape[3]:
        raise ConversionError(
            f"{path}: patch_embed_super.proj.weight has shape {_shape(patch)}, expected "
            "(width, channels, patch, patch)"
        )
    embed, in_chans, patch_size = int(patch.shape[0]), int(patch.shape[1]), int(patch.shape[2])
    expect("patch_embed_super.proj.weight", embed, in_chans, patch_size, patch_size)
    expect("patch_embed_super.proj.bias", embed)
    expect("cls_token", 1, 1, embed)
    tokens = int(state["pos_embed"].shape[1]) if state["pos_embed"].ndim == 3 else 0
    grid = round(max(tokens - 1, 0) ** 0.5)
    if tokens < 2 or grid * grid != tokens - 1:
        raise ConversionError(
            f"{path}: pos_embed has shape {_shape(state['pos_embed'])}, expected (1, 1 + "
            "patches, width) with a square grid of patches"
        )
    expect("pos_embed", 1, tokens, embed)
    for name in ("norm.weight", "norm.bias"):
        expect(name, embed)
    num_classes = int(state["head.weight"].shape[0])
    expect("head.weight", num_classes, embed)
    expect("head.bias", num_classes)

    qkv_dims, mlp_dims, table_shape = [], [], None
    for i in range(depth):
        p = f"blocks.{i}."
        rows = int(state[p + "attn.qkv.weight"].shape[0])
        if rows % 3:
            raise ConversionError(
                f"{path}: {p}attn.qkv.weight has {rows} rows, not a multiple of 3 (q, k, v)"
            )
        qkv = rows // 3
        expect(p + "attn.qkv.weight", 3 * qkv, embed)
        if with_bias:
            expect(p + "attn.qkv.bias", 3 * qkv)
        expect(p + "attn.proj.weight", embed, qkv)
        expect(p + "attn.proj.bias", embed)
        for name in ("attn_layer_norm", "ffn_layer_norm"):
            expect(p + name + ".weight", embed)
            expect(p + name + ".bias", embed)
        mlp = int(state[p + "fc1.weight"].shape[0])
        expect(p + "fc1.weight", mlp, embed)
        expect(p + "fc1.bias", mlp)
        expect(p + "fc2.weight", embed, mlp)
        expect(p + "fc2.bias", embed)
        if with_tables:
            first = state[p + _TABLES[0]]
            table_shape = table_shape or tuple(first.shape)
            for name in _TABLES:
                expect(p + name, *table_shape)
        qkv_dims.append(qkv)
        mlp_dims.append(mlp)
    max_distance = None
    if table_shape is not None:
        rows = table_shape[0]
        if len(table_shape) != 2 or rows < 4 or rows % 2:
            raise ConversionError(
                f"{path}: relative-position tables of shape {table_shape}, expected (2 x max "
                "distance + 2, head width)"
            )
        max_distance = (rows - 2) // 2
    return Layout(
        embed_dim=embed,
        depth=depth,
        qkv_dims=tuple(qkv_dims),
        mlp_dims=tuple(mlp_dims),
        in_chans=in_chans,
        patch_size=patch_size,
        img_size=grid * patch_size,
        num_classes=num_classes,
        qkv_bias=bool(with_bias),
        max_distance=max_distance,
        table_width=int(table_shape[1]) if table_shape is not None else None,
    )


# -- fitting a space ---------------------------------------------------------------------------
def _geometry_problems(layout: Layout, space: SearchSpace) -> list[str]:
    found = {
        "img_size": layout.img_size,
        "patch_size": layout.patch_size,
        "in_chans": layout.in_chans,
        "num_classes": layout.num_classes,
        "rel_pos": "autoformer" if layout.max_distance is not None else "none",
    }
    problems = [
        f"{name} {value} (the space says {getattr(space, name)})"
        for name, value in found.items()
        if getattr(space, name) != value
    ]
    if layout.max_distance is not None and space.rel_pos == "autoformer":
        if layout.max_distance != space.rel_pos_max_distance:
            problems.append(
                f"relative positions up to distance {layout.max_distance} (the space says "
                f"rel_pos_max_distance {space.rel_pos_max_distance})"
            )
        if layout.table_width is not None and layout.table_width < space.head_dim:
            problems.append(
                f"tables {layout.table_width} wide (the space's head_dim is {space.head_dim})"
            )
    return problems


def _holds_largest(layout: Layout, space: SearchSpace) -> bool:
    return (
        layout.embed_dim >= space.max_embed_dim
        and layout.depth >= space.max_depth
        and min(layout.qkv_dims[: space.max_depth]) >= space.max_qkv_dim
        and min(layout.mlp_dims[: space.max_depth]) >= space.max_mlp_hidden_dim
    )


def _as_subnet(layout: Layout, space: SearchSpace) -> SubnetConfig | None:
    """The subnet of ``space`` whose sizes the shapes are exactly, if there is one."""
    if any(q % space.head_dim for q in layout.qkv_dims):
        return None
    ratios = []
    for hidden in layout.mlp_dims:
        match = [r for r in space.mlp_ratio if int(layout.embed_dim * r) == hidden]
        if not match:
            return None
        ratios.append(match[0])
    try:
        subnet = SubnetConfig(
            layout.embed_dim,
            layout.depth,
            tuple(q // space.head_dim for q in layout.qkv_dims),
            tuple(ratios),
        )
    except SpaceError:
        return None
    return subnet if space.contains(subnet) else None


def _inferred_space(layout: Layout, preset: str) -> SearchSpace:
    """An AutoFormer preset with the checkpoint's geometry and relative positions."""
    space = Space.preset(preset)
    assert isinstance(space, SearchSpace)
    return dataclasses.replace(
        space,
        img_size=layout.img_size,
        patch_size=layout.patch_size,
        in_chans=layout.in_chans,
        num_classes=layout.num_classes,
        rel_pos="autoformer" if layout.max_distance is not None else "none",
        rel_pos_max_distance=layout.max_distance or space.rel_pos_max_distance,
    )


def _outside(layout: Layout, space: SearchSpace) -> str:
    """Why the shapes are neither the space's supernet nor one of its subnets."""
    heads = "/".join(f"{h:g}" for h in sorted({q / space.head_dim for q in layout.qkv_dims}))
    mlp = "/".join(map(str, sorted(set(layout.mlp_dims))))
    return (
        f"its {layout.depth} blocks of width {layout.embed_dim} ({heads} heads of "
        f"{space.head_dim}, MLP widths {mlp}) neither hold the space's largest subnet (depth "
        f"{space.max_depth}, width {space.max_embed_dim}, {space.max_num_heads} heads, MLP "
        f"{space.max_mlp_hidden_dim}) nor "
        "are one of its subnets"
    )


@dataclass(frozen=True)
class Conversion:
    """What a checkpoint was found to be and what it became."""

    kind: str  # "supernet" | "subnet"
    space: SearchSpace
    space_source: str  # how the space was chosen, in words
    layout: Layout
    subnet: SubnetConfig | None  # the subnet (kind "subnet")
    bias_heads: tuple[int, ...]  # per block: the head count whose Q/K/V bias is exact
    notes: tuple[str, ...]
    net: VitSupernet | None  # kind "supernet"
    model: torch.nn.Module | None  # kind "subnet": the standalone model

    def bias_summary(self) -> str:
        counts = sorted(set(self.bias_heads))
        if self.kind == "subnet":
            return "exact (a subnet checkpoint: its head counts are known)"
        if len(counts) == 1:
            what = f"{counts[0]} heads in every layer"
        else:
            what = "per layer " + "/".join(map(str, self.bias_heads)) + " heads"
        return (
            f"exact for {what}; at other head counts AutoFormer's contiguous slice would give "
            "other k and v biases (Cream issue #121: the k bias cancels in the softmax, the v "
            "bias shifts the output), so those subnets' outputs differ from AutoFormer's"
        )


def resolve_subnet(spec: str, space: SearchSpace) -> SubnetConfig:
    """``autoformer_t|s|b`` (the released subnets), ``smallest|middle|largest``, or a YAML file."""
    named = {"smallest": space.smallest, "middle": space.middle, "largest": space.largest}
    if spec in named:
        return named[spec]()
    path = SUBNETS_DIR / f"{spec}.yaml"
    if not path.is_file():
        path = Path(spec)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in SUBNETS_DIR.glob("*.yaml")))
        raise ConversionError(
            f"no subnet {spec!r}: give {known}, smallest, middle, largest or a subnet YAML file"
        )
    try:
        return space.validate(space.subnet_from_dict(_subnet_fields(path)))  # type: ignore[return-value]
    except SpaceError as exc:
        raise ConversionError(f"subnet {spec}: {exc}") from None


def _subnet_fields(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConversionError(f"{path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(data, Mapping) and "subnet" in data and "embed_dim" not in data:
        data = data["subnet"]  # an export's subnet.yaml
    if not isinstance(data, Mapping):
        raise ConversionError(f"{path} is not a subnet YAML (expected a mapping of fields)")
    return dict(data)


def released_subnet(name: str) -> SubnetConfig:
    """AutoFormer-T, -S or -B as released (``autoformer_t``, ``autoformer_s``, ``autoformer_b``)."""
    subnet = SubnetConfig.from_yaml(SUBNETS_DIR / f"{name}.yaml")
    assert isinstance(subnet, SubnetConfig)
    return subnet


# -- mapping ------------------------------------------------------------------------------------
def standalone_state(
    state: Mapping[str, torch.Tensor],
    space: SearchSpace,
    subnet: SubnetConfig,
    bias_heads: Sequence[int],
) -> dict[str, torch.Tensor]:
    """The weights of ``subnet`` in this family's standalone-model names (float32 copies).

    Every tensor is AutoFormer's leading slice at the subnet's sizes; the fused Q/K/V rows are
    regrouped from (q, k, v) per feature into ``[q | k | v]``, and the bias of block ``i`` is
    read as AutoFormer reads it at ``bias_heads[i]`` heads (module doc)."""
    d, hd = subnet.embed_dim, space.head_dim
    out = {
        "patch_embed.proj.weight": state["patch_embed_super.proj.weight"][:d],
        "patch_embed.proj.bias": state["patch_embed_super.proj.bias"][:d],
        "cls_token": state["cls_token"][..., :d],
        "pos_embed": state["pos_embed"][..., :d],
        "norm.weight": state["norm.weight"][:d],
        "norm.bias": state["norm.bias"][:d],
        "head.weight": state["head.weight"][:, :d],
        "head.bias": state["head.bias"],
    }
    for i, (heads, hidden) in enumerate(
        zip(subnet.num_heads, subnet.mlp_hidden_dims(), strict=True)
    ):
        a, o, q = f"blocks.{i}.", f"blocks.{i}.", heads * hd
        weight = state[a + "attn.qkv.weight"]
        bias = state.get(a + "attn.qkv.bias")
        if bias is None:
            bias = weight.new_zeros(weight.shape[0])
        at = bias_heads[i] * hd  # where AutoFormer's k and v biases start at that head count
        out |= {
            o + "norm1.weight": state[a + "attn_layer_norm.weight"][:d],
            o + "norm1.bias": state[a + "attn_layer_norm.bias"][:d],
            o + "attn.qkv.weight": torch.cat([weight[part::3][:q, :d] for part in range(3)]),
            o + "attn.qkv.bias": torch.cat([bias[part * at : part * at + q] for part in range(3)]),
            o + "attn.proj.weight": state[a + "attn.proj.weight"][:d, :q],
            o + "attn.proj.bias": state[a + "attn.proj.bias"][:d],
            o + "norm2.weight": state[a + "ffn_layer_norm.weight"][:d],
            o + "norm2.bias": state[a + "ffn_layer_norm.bias"][:d],
            o + "mlp.fc1.weight": state[a + "fc1.weight"][:hidden, :d],
            o + "mlp.fc1.bias": state[a + "fc1.bias"][:hidden],
            o + "mlp.fc2.weight": state[a + "fc2.weight"][:d, :hidden],
            o + "mlp.fc2.bias": state[a + "fc2.bias"][:d],
        }
        if space.rel_pos == "autoformer":
            for part in "kv":
                table = f"attn.rel_pos_embed_{part}.embeddings_table_"
                out[o + f"attn.rel_pos_{part}.row_table"] = state[a + table + "v"][:, :hd]
                out[o + f"attn.rel_pos_{part}.col_table"] = state[a + table + "h"][:, :hd]
    return {k: v.detach().to(torch.float32).clone().contiguous() for k, v in out.items()}


@torch.no_grad()
def _supernet(
    state: Mapping[str, torch.Tensor], space: SearchSpace, bias_heads: Sequence[int]
) -> VitSupernet:
    """The supernet whose largest subnet has the checkpoint's weights at the space's largest sizes:
    the largest subnet's slices are the whole of every supernet weight, so its standalone state
    fills the supernet through the supernet's own ``sliced`` views."""
    net = VitSupernet(space)
    largest = space.largest()
    views = net.subnet_state_dict(largest)
    values = standalone_state(state, space, largest, bias_heads)
    for key, view in views.items():
        view.copy_(values[key])
    written = net.subnet_state_dict(largest)
    covered = sum(v.numel() for v in written.values())
    if covered != sum(p.numel() for p in net.parameters()) or any(
        not torch.equal(written[k], values[k]) for k in values
    ):  # pragma: no cover - a slicing change that breaks this must fail loudly
        raise AssertionError("the largest subnet's slices no longer cover the supernet")
    return net.eval()


def convert(
    path: str | Path,
    space: SearchSpace | None = None,
    subnet: str | SubnetConfig | None = None,
    bias_for: str | SubnetConfig | None = None,
) -> Conversion:
    """Read an AutoFormer checkpoint as a supernet of ``space`` (inferred from the shapes when
    None: the AutoFormer preset that holds them) or, when ``subnet`` is given or the shapes are
    exactly one subnet, as that subnet's standalone model. ``bias_for``: the subnet for whose head
    counts a supernet's Q/K/V bias is made exact (default: the space's largest head count)."""
    state = load_state_dict(path)
    layout = read_layout(state, path)
    notes: list[str] = []
    if not layout.qkv_bias:
        notes.append("no Q/K/V bias in the checkpoint (qkv_bias=False): zero biases, exact")
    if space is not None:
        source = f"{space.name or 'the given space'} (given)"
    else:
        candidates = [_inferred_space(layout, name) for name in PRESETS]
        # the widest preset the shapes hold as a supernet, else the one they are a subnet of
        fitting = [s for s in reversed(candidates) if _holds_largest(layout, s)] or [
            s for s in candidates if _as_subnet(layout, s) is not None
        ]
        if not fitting:
            raise ConversionError(
                f"no AutoFormer preset ({', '.join(PRESETS)}) holds {path}: it has "
                f"{layout.describe()}; pass space=<a preset or YAML> whose choices hold it"
            )
        space = fitting[0]
        preset = Space.preset(space.name)
        changed = [f"{n} {getattr(space, n)}" for n in space.differences(preset)]
        source = f"{space.name} (inferred from the shapes" + (
            f"; from the checkpoint: {', '.join(changed)})" if changed else ")"
        )
    problems = _geometry_problems(layout, space)
    if problems:
        raise ConversionError(
            f"{path} does not fit space {space.name or '(unnamed)'}: the checkpoint has "
            f"{'; '.join(problems)}; pass space=<a preset or YAML that matches>"
        )
    if subnet is not None and bias_for is not None:
        raise ConversionError(
            "bias_for= applies to a supernet conversion; with subnet= the bias is exact for it"
        )
    chosen = resolve_subnet(subnet, space) if isinstance(subnet, str) else subnet
    holds = _holds_largest(layout, space)
    if chosen is None and not holds:
        chosen = _as_subnet(layout, space)
        if chosen is None:
            raise ConversionError(
                f"{path} does not fit space {space.name or '(unnamed)'}: {_outside(layout, space)}"
                "; pass space=<a preset or YAML> that holds it"
            )
    if chosen is not None:
        space.validate(chosen)
        fits = (
            layout.embed_dim >= chosen.embed_dim
            and layout.depth >= chosen.depth
            and all(
                q >= h * space.head_dim and m >= hidden
                for q, m, h, hidden in zip(
                    layout.qkv_dims,
                    layout.mlp_dims,
                    chosen.num_heads,
                    chosen.mlp_hidden_dims(),
                    strict=False,
                )
            )
        )
        if not fits:
            raise ConversionError(
                f"{path} is too small for subnet {chosen}: it has {layout.describe()}; give the "
                "checkpoint that subnet was trained in"
            )
        bias_heads = tuple(chosen.num_heads)
        notes.append(_sliced_note(layout, space, chosen, "the subnet"))
        standalone = VisionTransformer.from_space(space, chosen)
        standalone.load_state_dict(standalone_state(state, space, chosen, bias_heads), strict=True)
        return Conversion(
            "subnet",
            space,
            source,
            layout,
            chosen,
            bias_heads,
            _clean(notes),
            None,
            standalone.eval(),
        )
    bias_subnet = resolve_subnet(bias_for, space) if isinstance(bias_for, str) else bias_for
    largest = space.max_num_heads
    bias_heads = tuple(
        bias_subnet.num_heads[i] if bias_subnet is not None and i < bias_subnet.depth else largest
        for i in range(space.max_depth)
    )
    notes.append(_sliced_note(layout, space, space.largest(), "the space's largest subnet"))
    net = _supernet(state, space, bias_heads)
    return Conversion("supernet", space, source, layout, None, bias_heads, _clean(notes), net, None)


def _sliced_note(layout: Layout, space: SearchSpace, target: SubnetConfig, what: str) -> str:
    """Which stored sizes exceed ``target``'s (and are cut by leading slices)."""
    sizes = [
        ("width", layout.embed_dim, target.embed_dim),
        ("blocks", layout.depth, target.depth),
        ("Q/K/V width", max(layout.qkv_dims), max(target.num_heads) * space.head_dim),
        ("MLP width", max(layout.mlp_dims), max(target.mlp_hidden_dims())),
    ]
    parts = [f"{name} {stored} to {used}" for name, stored, used in sizes if stored > used]
    return f"stored larger than {what}: sliced {', '.join(parts)}" if parts else ""


def _clean(notes: Sequence[str]) -> tuple[str, ...]:
    return tuple(n for n in notes if n)
