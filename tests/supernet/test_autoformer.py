"""Importing AutoFormer checkpoints, checked against an independent AutoFormer forward.

The checkpoints are built here with AutoFormer's key names and layouts (random tensors): Q/K/V
rows interleaved per feature, a contiguous Q/K/V bias, ``rel_pos_embed_{k,v}.embeddings_table_
{v,h}`` tables. :func:`autoformer_logits` is AutoFormer's forward written from its definitions in
plain torch (loops for the relative-position indices, per-pair sums for the relative terms,
float64), sharing nothing with the converter or this project's models.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from supernet import SearchSpace, SubnetConfig, complexity
from supernet.checkpoint import load_supernet
from supernet.common.errors import UserError
from supernet.convert import ConvertOptions, convert_autoformer
from supernet.saved_model import load_subnet
from supernet.vit.autoformer import ConversionError, convert, released_subnet
from supernet.vit.relpos import relative_position_index

TOL = 1e-5

#: AutoFormer's supernets (SUPERNET in experiments/supernet/supernet-{T,S,B}.yaml): width,
#: depth, heads (of 64), MLP ratio 4.
SUPERNETS = {
    "autoformer_tiny_rpe": (256, 14, 4, "autoformer_t"),
    "autoformer_small_rpe": (448, 14, 7, "autoformer_s"),
    "autoformer_base_rpe": (640, 16, 10, "autoformer_b"),
}

#: A small space in AutoFormer's configuration: 3 x 3 patches, max distance 1 (so clamping
#: happens), head width 8.
SMALL = SearchSpace(
    embed_dim=(16, 24),
    depth=(2, 3),
    num_heads=(1, 2, 3),
    mlp_ratio=(2.0, 3.0),
    img_size=12,
    patch_size=4,
    in_chans=3,
    num_classes=7,
    head_dim=8,
    pool="cls_mean",
    rel_pos="autoformer",
    rel_pos_max_distance=1,
    norm_eps=1e-5,
    name="small_af",
)


# -- AutoFormer's checkpoint layout and forward, from the definitions -----------------------------
def autoformer_state(
    width: int,
    depth: int,
    heads: int,
    *,
    mlp: int | None = None,
    head_dim: int = 64,
    img_size: int = 224,
    patch: int = 16,
    in_chans: int = 3,
    classes: int = 1000,
    max_distance: int | None = 14,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Random weights with AutoFormer's names and shapes (Vision_TransformerSuper with
    qkv_bias=True, change_qkv, relative positions unless ``max_distance`` is None)."""
    g = torch.Generator().manual_seed(seed)
    q, m, tokens = heads * head_dim, mlp or 4 * width, (img_size // patch) ** 2 + 1

    def rand(*shape: int, std: float = 0.1, mean: float = 0.0) -> torch.Tensor:
        return mean + std * torch.randn(*shape, generator=g)

    w = width**-0.5  # weights that keep activations and logits of order 1, as trained ones are
    state = {
        "patch_embed_super.proj.weight": rand(width, in_chans, patch, patch, std=0.05),
        "patch_embed_super.proj.bias": rand(width),
        "cls_token": rand(1, 1, width, std=0.5),
        "pos_embed": rand(1, tokens, width, std=0.5),
        "norm.weight": rand(width, mean=1.0),
        "norm.bias": rand(width),
        "head.weight": rand(classes, width, std=w),
        "head.bias": rand(classes),
    }
    for i in range(depth):
        p = f"blocks.{i}."
        state |= {
            p + "attn_layer_norm.weight": rand(width, mean=1.0),
            p + "attn_layer_norm.bias": rand(width),
            p + "attn.qkv.weight": rand(3 * q, width, std=w),
            p + "attn.qkv.bias": rand(3 * q, std=0.5),  # large, so a misread bias shows
            p + "attn.proj.weight": rand(width, q, std=q**-0.5),
            p + "attn.proj.bias": rand(width),
            p + "ffn_layer_norm.weight": rand(width, mean=1.0),
            p + "ffn_layer_norm.bias": rand(width),
            p + "fc1.weight": rand(m, width, std=w),
            p + "fc1.bias": rand(m),
            p + "fc2.weight": rand(width, m, std=m**-0.5),
            p + "fc2.bias": rand(width),
        }
        if max_distance is not None:
            for part in "kv":
                for axis in "vh":
                    key = f"{p}attn.rel_pos_embed_{part}.embeddings_table_{axis}"
                    state[key] = rand(2 * max_distance + 2, head_dim, std=0.5)
    return state


def pair_indices(grid: int, max_distance: int) -> tuple[torch.Tensor, torch.Tensor]:
    """AutoFormer's table indices, pair by pair: 0 for any pair with the CLS token (token 0);
    else the clamped row (column) distance of key minus query, plus max_distance + 1."""
    n = grid * grid + 1
    rows, cols = torch.zeros(n, n, dtype=torch.long), torch.zeros(n, n, dtype=torch.long)
    for a in range(1, n):
        for b in range(1, n):
            (ra, ca), (rb, cb) = divmod(a - 1, grid), divmod(b - 1, grid)
            rows[a, b] = max(-max_distance, min(max_distance, rb - ra)) + max_distance + 1
            cols[a, b] = max(-max_distance, min(max_distance, cb - ca)) + max_distance + 1
    return rows, cols


def autoformer_logits(
    state: dict[str, torch.Tensor],
    x: torch.Tensor,
    subnet: SubnetConfig,
    *,
    head_dim: int = 64,
    patch: int = 16,
    max_distance: int | None = 14,
    gp: bool = True,
) -> torch.Tensor:
    """AutoFormer's forward of ``subnet`` (set_sample_config), in float64."""
    s = {k: v.double() for k, v in state.items()}
    x, d = x.double(), subnet.embed_dim
    b = x.shape[0]
    tokens = F.conv2d(
        x,
        s["patch_embed_super.proj.weight"][:d],
        s["patch_embed_super.proj.bias"][:d],
        stride=patch,
    )
    grid = tokens.shape[-1]
    h = torch.cat(
        [s["cls_token"][..., :d].expand(b, 1, d), tokens.flatten(2).transpose(1, 2)], dim=1
    )
    h = h + s["pos_embed"][..., :d]
    n = h.shape[1]
    if max_distance is not None:
        rows, cols = pair_indices(grid, max_distance)
    for i, (heads, ratio) in enumerate(zip(subnet.num_heads, subnet.mlp_ratio, strict=True)):
        p, q, m = f"blocks.{i}.", heads * head_dim, int(d * ratio)
        y = F.layer_norm(
            h, (d,), s[p + "attn_layer_norm.weight"][:d], s[p + "attn_layer_norm.bias"][:d], 1e-5
        )
        w = s[p + "attn.qkv.weight"][:, :d]
        w = torch.cat([w[j : 3 * q : 3] for j in range(3)])  # q rows 0,3,..; k 1,4,..; v 2,5,..
        qkv = y @ w.T + s[p + "attn.qkv.bias"][: 3 * q]  # the bias: contiguous
        qkv = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        qq, kk, vv = qkv[0], qkv[1], qkv[2]
        scale = head_dim**-0.5
        scores = (qq @ kk.transpose(-2, -1)) * scale
        if max_distance is not None:
            table = p + "attn.rel_pos_embed_k.embeddings_table_"
            rk = s[table + "v"][rows][..., :head_dim] + s[table + "h"][cols][..., :head_dim]
            scores = scores + (qq.unsqueeze(-2) * rk).sum(-1) * scale
        probs = scores.softmax(-1)
        out = probs @ vv
        if max_distance is not None:
            table = p + "attn.rel_pos_embed_v.embeddings_table_"
            rv = s[table + "v"][rows][..., :head_dim] + s[table + "h"][cols][..., :head_dim]
            out = out + (probs.unsqueeze(-1) * rv).sum(-2)
        out = out.transpose(1, 2).reshape(b, n, q)
        h = h + out @ s[p + "attn.proj.weight"][:d, :q].T + s[p + "attn.proj.bias"][:d]
        y = F.layer_norm(
            h, (d,), s[p + "ffn_layer_norm.weight"][:d], s[p + "ffn_layer_norm.bias"][:d], 1e-5
        )
        y = F.gelu(y @ s[p + "fc1.weight"][:m, :d].T + s[p + "fc1.bias"][:m])
        h = h + y @ s[p + "fc2.weight"][:d, :m].T + s[p + "fc2.bias"][:d]
    h = F.layer_norm(h, (d,), s["norm.weight"][:d], s["norm.bias"][:d], 1e-5)
    h = h[:, 1:].mean(1) if gp else h[:, 0]
    return h @ s["head.weight"][:, :d].T + s["head.bias"]


def _save(tmp_path: Path, state: dict[str, torch.Tensor], name: str = "af.pth", **extra) -> Path:
    path = tmp_path / name
    torch.save({"model": state, "epoch": 3, **extra}, path)
    return path


def _small_state(
    width: int = 32, depth: int = 4, heads: int = 4, **kwargs: int
) -> dict[str, torch.Tensor]:
    """By default a supernet for SMALL stored larger than its largest subnet (width 32 > 24,
    4 blocks > 3, 4 heads > 3, MLP 128 > 72), as AutoFormer's supernets are."""
    options = {"head_dim": 8, "img_size": 12, "patch": 4, "classes": 7, "max_distance": 1}
    return autoformer_state(width, depth, heads, **(options | kwargs))


def _small_ref(state: dict[str, torch.Tensor], x: torch.Tensor, subnet: SubnetConfig):
    return autoformer_logits(state, x, subnet, head_dim=8, patch=4, max_distance=1)


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


# -- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("grid", "distance"), [(3, 1), (4, 2), (14, 14), (5, 9)])
def test_relative_position_index_is_autoformers(grid: int, distance: int) -> None:
    rows, cols = relative_position_index(grid, distance)
    want_rows, want_cols = pair_indices(grid, distance)
    assert torch.equal(rows, want_rows) and torch.equal(cols, want_cols)


def test_supernet_matches_autoformer_for_every_subnet(tmp_path: Path) -> None:
    """Smallest, largest and random subnets, each with the bias made exact for it; the
    extracted models equal the supernet and have the parameters the cost model counts (its MACs
    are checked against FlopCounterMode in test_complexity.py)."""
    state = _small_state()
    path = _save(tmp_path, state)
    x = torch.randn(2, 3, 12, 12)
    rng = random.Random(0)
    subnets = [SMALL.smallest(), SMALL.largest(), *(SMALL.sample(rng) for _ in range(4))]
    for subnet in subnets:
        result = convert(path, SMALL, bias_for=subnet)
        assert result.kind == "supernet" and result.net is not None
        assert result.bias_heads[: subnet.depth] == subnet.num_heads
        with torch.no_grad():
            got = result.net(x, subnet)
            model = result.net.extract(subnet)
            assert _diff(got, _small_ref(state, x, subnet)) <= TOL, subnet
            assert _diff(model(x), got) <= TOL
        assert complexity.params(SMALL, subnet) == sum(p.numel() for p in model.parameters())


def test_supernet_bias_is_exact_for_one_head_count(tmp_path: Path) -> None:
    """Cream issue #121: by default the bias is exact at the largest head count; elsewhere the v
    bias differs from AutoFormer's contiguous slice, unless the bias is zero."""
    x = torch.randn(2, 3, 12, 12)
    state = _small_state()
    result = convert(_save(tmp_path, state), SMALL)
    assert result.bias_heads == (3, 3, 3) and "exact for 3 heads" in result.bias_summary()
    assert result.net is not None
    top = SMALL.uniform(24, 3, 3, 2.0)
    low = SMALL.uniform(24, 3, 1, 2.0)
    with torch.no_grad():
        assert _diff(result.net(x, top), _small_ref(state, x, top)) <= TOL
        assert _diff(result.net(x, low), _small_ref(state, x, low)) > 1e-2  # the issue
    for p in (k for k in state if k.endswith("qkv.bias")):
        state[p] = torch.zeros_like(state[p])
    result = convert(_save(tmp_path, state, "zero_bias.pth"), SMALL)
    assert result.net is not None
    with torch.no_grad():
        assert _diff(result.net(x, low), _small_ref(state, x, low)) <= TOL


def test_retrained_subnet_and_subnet_shaped_checkpoints(tmp_path: Path) -> None:
    """subnet= reads a supernet-shaped file as that subnet (exact bias); a file whose shapes are
    exactly one subnet of the space is read as it without being told."""
    x = torch.randn(2, 3, 12, 12)
    state = _small_state()
    subnet = SubnetConfig(16, 3, (2, 1, 3), (3.0, 2.0, 3.0))
    yaml_path = tmp_path / "sub.yaml"
    subnet.to_yaml(yaml_path)
    result = convert(_save(tmp_path, state), SMALL, subnet=str(yaml_path))
    assert result.kind == "subnet" and result.subnet == subnet and result.model is not None
    with torch.no_grad():
        assert _diff(result.model(x), _small_ref(state, x, subnet)) <= TOL
    # AutoFormer run with SUPERNET = a uniform subnet: width 16, 2 blocks, 2 heads, MLP 48
    shaped = _small_state(16, 2, 2, mlp=48, seed=1)
    found = convert(_save(tmp_path, shaped, "shaped.pth"), SMALL)
    assert found.kind == "subnet" and found.subnet == SubnetConfig(16, 2, (2, 2), (3.0, 3.0))
    assert found.model is not None and found.notes == ()
    with torch.no_grad():
        assert _diff(found.model(x), _small_ref(shaped, x, found.subnet)) <= TOL


def test_module_prefix_bare_state_dict_and_training_args(tmp_path: Path) -> None:
    """A bare state dict, DDP's module. prefixes and AutoFormer's training checkpoint (whose
    `args` is an argparse.Namespace) all load; a wider table is cut to head_dim."""
    import argparse

    state = _small_state()
    x = torch.randn(1, 3, 12, 12)
    bare = tmp_path / "bare.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, bare)
    trained = _save(tmp_path, state, "trained.pth", args=argparse.Namespace(lr=5e-4, gp=True))
    largest = SMALL.largest()
    for path in (bare, trained):
        result = convert(path, SMALL)
        assert result.net is not None
        with torch.no_grad():
            assert _diff(result.net(x, largest), _small_ref(state, x, largest)) <= TOL
    # qkv_bias=False (Vision_TransformerSuper's default): zero biases, exact at every head count
    no_bias = {k: v for k, v in state.items() if not k.endswith("qkv.bias")}
    result = convert(_save(tmp_path, no_bias, "no_bias.pth"), SMALL)
    assert result.net is not None and any("no Q/K/V bias" in n for n in result.notes)
    zeros = state | {k: torch.zeros_like(v) for k, v in state.items() if k.endswith("qkv.bias")}
    with torch.no_grad():
        assert _diff(result.net(x, SMALL.smallest()), _small_ref(zeros, x, SMALL.smallest())) <= TOL


def test_released_autoformer_t_as_retrained_subnet(tmp_path: Path) -> None:
    """A supernet-T-shaped file (as AutoFormer's retraining saves it), read as AutoFormer-T; 2 x 2
    patches and 10 classes keep it fast (the 224 px check is a slow test)."""
    state = autoformer_state(256, 14, 4, img_size=32, classes=10)
    result = convert(_save(tmp_path, state), subnet="autoformer_t")
    target = released_subnet("autoformer_t")
    assert result.kind == "subnet" and result.subnet == target and result.model is not None
    preset = SearchSpace.preset("autoformer_tiny_rpe")
    assert result.space == dataclasses.replace(preset, img_size=32, num_classes=10)
    assert "img_size 32, num_classes 10" in result.space_source
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert _diff(result.model(x), autoformer_logits(state, x, target)) <= TOL


@pytest.mark.slow
@pytest.mark.parametrize("preset", sorted(SUPERNETS))
def test_presets_smallest_largest_released(preset: str, tmp_path: Path) -> None:
    """AutoFormer's supernet-T/S/B shapes (2 x 2 patches of 16 px, 10 classes, for speed): the
    space is inferred (the preset, with the file's geometry); smallest, largest and the released
    subnet match AutoFormer's forward, as a supernet and as a retrained subnet."""
    width, depth, heads, released = SUPERNETS[preset]
    state = autoformer_state(width, depth, heads, img_size=32, classes=10, seed=depth)
    path = _save(tmp_path, state)
    x = torch.randn(2, 3, 32, 32)
    base = SearchSpace.preset(preset)
    target = released_subnet(released)
    for subnet in (base.smallest(), base.largest(), target):
        result = convert(path, bias_for=subnet)
        assert result.space.name == preset and result.kind == "supernet"
        assert result.space == dataclasses.replace(base, img_size=32, num_classes=10)
        assert result.net is not None
        want = autoformer_logits(state, x, subnet)
        with torch.no_grad():
            assert _diff(result.net(x, subnet), want) <= TOL, subnet
    retrained = convert(path, subnet=released)
    assert retrained.kind == "subnet" and retrained.model is not None
    with torch.no_grad():
        assert _diff(retrained.model(x), autoformer_logits(state, x, target)) <= TOL


@pytest.mark.slow
def test_autoformer_t_at_224_px(tmp_path: Path) -> None:
    """The real geometry, batch 1: AutoFormer-T from a supernet-T-shaped checkpoint."""
    state = autoformer_state(256, 14, 4)
    path = _save(tmp_path, state)
    x = torch.randn(1, 3, 224, 224)
    target = released_subnet("autoformer_t")
    result = convert(path, subnet="autoformer_t")
    assert result.space == SearchSpace.preset("autoformer_tiny_rpe")
    assert result.model is not None
    with torch.no_grad():
        assert _diff(result.model(x), autoformer_logits(state, x, target)) <= TOL
    assert sum(p.numel() for p in result.model.parameters()) == 5_867_944


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_budget_presets_hold_the_released_models(size: str) -> None:
    """conf/budget/autoformer_<size>.yaml's parameter window holds the released model, counted
    with its relative-position tables (the *_rpe space) and, where it is a subnet, without."""
    import yaml

    from search.budget import parse_amount
    from supernet.space import PRESETS_DIR

    budget = yaml.safe_load((PRESETS_DIR.parent / "budget" / f"autoformer_{size}.yaml").read_text())
    low, high = (
        parse_amount("params", budget["min_params"]),
        parse_amount("params", budget["params"]),
    )
    subnet = released_subnet(f"autoformer_{size[0]}")
    spaces = [
        SearchSpace.preset(f"autoformer_{size}_rpe"),
        SearchSpace.preset(f"autoformer_{size}"),
    ]
    counted = [complexity.params(s, subnet) for s in spaces if s.contains(subnet)]
    assert len(counted) == (1 if size == "tiny" else 2)  # AutoFormer-T uses MLP ratio 3.0
    assert all(low <= n <= high for n in counted), (counted, low, high)


# -- the command: outputs --------------------------------------------------------------------------
def _image_folder(root: Path, classes: int, size: int, per_class: int = 2) -> Path:
    from PIL import Image

    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for k in range(per_class):
                pixels = torch.randint(0, 256, (size, size, 3), dtype=torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{k}.png")
    return root


def test_command_writes_a_searchable_supernet(tmp_path: Path, capsys) -> None:
    state = _small_state()
    path = _save(tmp_path, state)
    space_file = tmp_path / "small_af.yaml"
    SMALL.to_yaml(space_file)
    data = _image_folder(tmp_path / "images", 7, 12)
    out = tmp_path / "converted"
    options = ConvertOptions(out=str(out), space=str(space_file), data=str(data), val_size=7)
    convert_autoformer(path, options)
    printed = capsys.readouterr().out
    assert "found: a supernet checkpoint" in printed and "space: small_af (given)" in printed
    assert "qkv bias: exact for 3 heads in every layer" in printed
    assert "stored larger than the space's largest subnet: sliced width 32 to 24" in printed
    net, payload = load_supernet(out / "supernet.pt")
    assert net.space == SMALL and payload["data"]["root"] == str(data.resolve())
    assert payload["converted_from"]["kind"] == "supernet"
    # Searches evaluate it with this tool's ImageFolder pipeline: its exports carry that.
    pre = payload["preprocessing"]
    assert pre["class_names"] == [f"class{c}" for c in range(7)] and pre["resize"] == 13
    assert pre["interpolation"] == "bilinear" and pre["input_size"] == [3, 12, 12]
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert _diff(net.eval()(x, SMALL.largest()), _small_ref(state, x, SMALL.largest())) <= TOL
    with pytest.raises(UserError, match="exists and is not empty; choose another or pass"):
        convert_autoformer(path, options)
    # overwrite=true replaces an earlier conversion, and nothing else
    (out / "notes.txt").write_text("mine")
    again = dataclasses.replace(options, overwrite=True)
    with pytest.raises(UserError, match=r"holds notes\.txt, not an earlier conversion's files"):
        convert_autoformer(path, again)
    assert (out / "notes.txt").read_text() == "mine" and (out / "supernet.pt").is_file()
    (out / "notes.txt").unlink()
    convert_autoformer(path, again)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "supernet.pt"]


@pytest.mark.slow
def test_search_runs_on_a_converted_supernet(tmp_path: Path) -> None:
    from search import run_search

    path = _save(tmp_path, _small_state())
    space_file = tmp_path / "small_af.yaml"
    SMALL.to_yaml(space_file)
    data = _image_folder(tmp_path / "images", 7, 12, per_class=3)
    out = tmp_path / "converted"
    convert_autoformer(
        path, ConvertOptions(out=str(out), space=str(space_file), data=str(data), val_size=7)
    )
    settings = {"n_trials": 3, "sampler": "random", "progress": False, "plots_png": False}
    result = run_search({"supernet": str(out / "supernet.pt"), "search": settings}, tmp_path / "s")
    assert (result.trials["state"] == "COMPLETE").sum() == 3


@pytest.mark.slow
def test_command_writes_a_loadable_export_with_onnx(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    state = _small_state()
    path = _save(tmp_path, state)
    space_file = tmp_path / "small_af.yaml"
    SMALL.to_yaml(space_file)
    subnet = SMALL.largest()
    out = tmp_path / "export"
    convert_autoformer(
        path, ConvertOptions(out=str(out), space=str(space_file), subnet="largest", onnx="true")
    )
    model = load_subnet(out)
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        assert _diff(model(x), _small_ref(state, x, subnet)) <= TOL
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out / "model.onnx"))
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    assert _diff(torch.from_numpy(logits), model(x)) <= 1e-4
    # AutoFormer's (DeiT's) evaluation transform: ImageNet's mean and std, bicubic, 256/224.
    assert model.preprocessing.mean == (0.485, 0.456, 0.406)
    assert model.preprocessing.interpolation == "bicubic" and model.preprocessing.resize == 13
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["std"]) == [0.229, 0.224, 0.225] and meta["divide_by"] == "255.0"
    assert "## Preprocessing" in (out / "README.md").read_text()


# -- the command: errors ---------------------------------------------------------------------------
class _Crafted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


def _errors() -> tuple[list[tuple[str, dict, str]], dict[str, dict[str, torch.Tensor]]]:
    """The cases (file, convert() keyword arguments, the error's words) and the files' states."""
    good = _small_state()
    wrong_shape = dict(good)
    wrong_shape["blocks.1.fc2.weight"] = torch.zeros(32, 100)
    no_pos = {k: v for k, v in good.items() if k != "pos_embed"}
    missing = {k: v for k, v in good.items() if not k.startswith("blocks.2.fc1")}
    half_tables = {k: v for k, v in good.items() if not k.startswith("blocks.3.attn.rel_pos")}
    narrow = _small_state(16, 4, 2, mlp=48)  # 4 blocks: not a subnet (depth 2 or 3)
    shaped = _small_state(16, 2, 2, mlp=48)  # exactly a subnet, too small for the largest
    thin_tables = {k: v[:, :4] if "embeddings_table" in k else v for k, v in good.items()}
    some_bias = {k: v for k, v in good.items() if k != "blocks.1.attn.qkv.bias"}
    return [
        ("unknown", {}, "is not an AutoFormer ViT checkpoint: unknown key(s) blocks.0.attn.foo"),
        ("missing", {}, "missing key(s) blocks.2.fc1.bias, blocks.2.fc1.weight"),
        ("half_tables", {}, "missing key(s) blocks.3.attn.rel_pos_embed_k.embeddings_table_h"),
        ("wrong_shape", {}, "blocks.1.fc2.weight is a torch.float32 tensor of shape (32, 100)"),
        ("no_pos", {}, "has no absolute position embedding (AutoFormer's --no_abs_pos)"),
        ("patch_only", {}, "not a whole AutoFormer ViT checkpoint: missing key(s) cls_token"),
        ("narrow", {"space": SMALL}, "does not fit space small_af: its 4 blocks of width 16"),
        ("good", {"space": dataclasses.replace(SMALL, num_classes=9)}, "num_classes 7 (the"),
        ("good", {"space": dataclasses.replace(SMALL, rel_pos_max_distance=2)}, "distance 1"),
        ("good", {}, "no AutoFormer preset (autoformer_tiny_rpe"),
        ("good", {"space": SMALL, "subnet": "huge"}, "no subnet 'huge': give autoformer_b"),
        ("good", {"space": SMALL, "subnet": "largest", "bias_for": "smallest"}, "bias_for="),
        ("shaped", {"space": SMALL, "subnet": "largest"}, "is too small for subnet D24-L3"),
        ("thin_tables", {"space": SMALL}, "tables 4 wide (the space's head_dim is 8)"),
        ("some_bias", {}, "only some blocks have attn.qkv.bias"),
        ("not_tensors", {}, "is not a state dict: epoch, lr hold(s) float, int, not tensors"),
        ("crafted", {}, "refusing to load"),
        ("truncated", {}, "the file is truncated or corrupt"),
    ], {
        "good": good,
        "unknown": good | {"blocks.0.attn.foo": torch.zeros(1)},
        "missing": missing,
        "half_tables": half_tables,
        "wrong_shape": wrong_shape,
        "no_pos": no_pos,
        "patch_only": {"patch_embed_super.proj.weight": good["patch_embed_super.proj.weight"]},
        "narrow": narrow,
        "shaped": shaped,
        "thin_tables": thin_tables,
        "some_bias": some_bias,
    }


def test_every_conversion_error_is_one_clear_line(tmp_path: Path) -> None:
    cases, states = _errors()
    for name, state in states.items():
        _save(tmp_path, state, f"{name}.pth")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "not_tensors.pth")
    marker = tmp_path / "pwned"
    torch.save({"model": _Crafted(marker)}, tmp_path / "crafted.pth")
    whole = (tmp_path / "good.pth").read_bytes()
    (tmp_path / "truncated.pth").write_bytes(whole[: len(whole) // 3])
    for name, kwargs, words in cases:
        with pytest.raises(ConversionError) as info:
            convert(tmp_path / f"{name}.pth", **kwargs)
        message = str(info.value)
        assert words in message and "\n" not in message, (name, message)
    assert not marker.exists()
    with pytest.raises(ConversionError, match=r"AutoFormer checkpoint not found: .*; check"):
        convert(tmp_path / "nope.pth")
    with pytest.raises(ConversionError, match="is a directory; give the checkpoint file"):
        convert(tmp_path)


def test_command_option_errors(tmp_path: Path) -> None:
    path = _save(tmp_path, _small_state())
    space_file = tmp_path / "small_af.yaml"
    SMALL.to_yaml(space_file)
    base = ConvertOptions(out=str(tmp_path / "out"), space=str(space_file))
    data = _image_folder(tmp_path / "nine", 9, 12, per_class=1)
    cases = [
        (ConvertOptions(space=str(space_file)), "give out=<dir>"),
        (base, "is a supernet checkpoint, and a supernet needs"),
        (dataclasses.replace(base, data=str(tmp_path)), "needs " + str(tmp_path / "train")),
        (dataclasses.replace(base, data=str(data)), "has 9 class folder(s) but the checkpoint"),
        (dataclasses.replace(base, subnet="largest", data=str(data)), "data= is for a supernet"),
        (dataclasses.replace(base, onnx="maybe"), "onnx must be auto, true or false"),
        (dataclasses.replace(base, space="nosuch"), "space=nosuch: invalid search space: no pre"),
    ]
    for options, words in cases:
        with pytest.raises(UserError) as info:
            convert_autoformer(path, options)
        assert words in str(info.value), (words, str(info.value))
    assert not (tmp_path / "out").exists()
