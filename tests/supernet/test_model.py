from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from supernet import SearchSpace, SpaceError, SubnetConfig, Supernet, VisionTransformer
from supernet.common.errors import CheckpointError
from supernet.model import weight_count
from supernet.saved_model import load_subnet, save_subnet
from supernet.space import PRESETS_DIR, Space
from supernet.swin import SwinSpace

VARIANTS = [("cls", "learned"), ("mean", "learned"), ("cls", "sinusoidal"), ("mean", "sinusoidal")]
#: AutoFormer's options: (pool, rel_pos, norm_eps), beside the default learned position embedding.
AUTOFORMER_OPTIONS = [
    ("cls_mean", "autoformer", 1e-5),
    ("cls", "autoformer", 1e-6),
    ("cls_mean", "none", 1e-5),
]


def _subnets(space: SearchSpace, n: int, seed: int = 0) -> list[SubnetConfig]:
    rng = random.Random(seed)
    return [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(n))]


def _images(space: SearchSpace, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, space.in_chans, space.img_size, space.img_size)


@pytest.mark.parametrize(("pool", "pos_embed"), VARIANTS)
def test_extracted_logits_equal_supernet(
    tiny_space: SearchSpace, pool: str, pos_embed: str
) -> None:
    space = dataclasses.replace(tiny_space, pool=pool, pos_embed=pos_embed)
    net = Supernet(space).eval()
    x = _images(space)
    for subnet in _subnets(space, 20):
        model = net.extract(subnet)
        assert isinstance(model, VisionTransformer) and not model.training
        with torch.no_grad():
            expected = net(x, subnet)
            got = model(x)
        assert got.shape == (3, space.num_classes)
        assert (expected - got).abs().max().item() <= 1e-5, subnet


@pytest.mark.parametrize(("pool", "rel_pos", "eps"), AUTOFORMER_OPTIONS)
def test_extracted_logits_equal_supernet_autoformer_options(
    tiny_space: SearchSpace, pool: str, rel_pos: str, eps: float
) -> None:
    """On a 3 x 3 patch grid with max distance 1, so that clamping happens."""
    space = dataclasses.replace(
        tiny_space, img_size=12, pool=pool, rel_pos=rel_pos, rel_pos_max_distance=1, norm_eps=eps
    )
    net = Supernet(space).eval()
    x = _images(space)
    for subnet in _subnets(space, 12):
        model = net.extract(subnet)
        assert model.norm.eps == eps and all(b.norm1.eps == eps for b in model.blocks)
        with torch.no_grad():
            diff = (net(x, subnet) - model(x)).abs().max().item()
        assert diff <= 1e-5, (subnet, diff)


@pytest.mark.parametrize("preset", ["digits", "fashion_mnist"])
def test_extracted_logits_equal_supernet_presets(preset: str) -> None:
    space = SearchSpace.preset(preset)
    net = Supernet(space).eval()
    x = _images(space, 4)
    for subnet in _subnets(space, 6):
        with torch.no_grad():
            diff = (net(x, subnet) - net.extract(subnet)(x)).abs().max().item()
        assert diff <= 1e-5, (subnet, diff)


def test_extracted_model_owns_its_weights(tiny_space: SearchSpace) -> None:
    net = Supernet(tiny_space).eval()
    subnet = tiny_space.largest()
    model = net.extract(subnet)
    net_storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert all(p.untyped_storage().data_ptr() not in net_storages for p in model.parameters())
    x = _images(tiny_space)
    with torch.no_grad():
        before = model(x)
        for p in net.parameters():
            p.add_(1.0)
        assert torch.equal(model(x), before)


def test_subnets_share_leading_slices(tiny_space: SearchSpace) -> None:
    """Weight entanglement: a smaller subnet's weights are the leading slices of a larger one's."""
    net = Supernet(tiny_space)
    small = net.subnet_state_dict(SubnetConfig(8, 1, (1,), (1.0,)))
    large = net.subnet_state_dict(SubnetConfig(12, 2, (3, 3), (2.5, 2.5)))
    for key, value in small.items():
        big = large[key]
        if key.endswith("attn.qkv.weight"):
            continue  # checked per head below
        index = tuple(slice(0, n) for n in value.shape)
        assert torch.equal(big[index], value), key


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_qkv_rows_of_a_head_do_not_move(tiny_space: SearchSpace, heads: int) -> None:
    """Q, K and V of head h use the same weight rows and bias entries for every head count."""
    net = Supernet(tiny_space)
    hd, max_heads, dim = tiny_space.head_dim, tiny_space.max_num_heads, 12
    block = net.blocks[0]
    sliced = block.sliced(dim, heads, 12)
    w = sliced["attn.qkv.weight"].reshape(3, heads, hd, dim)
    b = sliced["attn.qkv.bias"].reshape(3, heads, hd)
    full_w = block.qkv.weight.reshape(3, max_heads, hd, -1)
    full_b = block.qkv.bias.reshape(3, max_heads, hd)
    for part in range(3):  # q, k, v
        for h in range(heads):
            assert torch.equal(w[part, h], full_w[part, h, :, :dim])
            assert torch.equal(b[part, h], full_b[part, h])


def _expected_masks(space: SearchSpace, subnet: SubnetConfig) -> dict[str, torch.Tensor]:
    """Which entries of each supernet parameter a subnet uses, written out independently."""
    d, hd = subnet.embed_dim, space.head_dim
    qmax = space.max_qkv_dim
    shapes = {k: v.shape for k, v in Supernet(space).named_parameters()}
    masks = {k: torch.zeros(s, dtype=torch.bool) for k, s in shapes.items()}
    masks["patch_embed.weight"][:d] = True
    masks["patch_embed.bias"][:d] = True
    if "cls_token" in masks:
        masks["cls_token"][..., :d] = True
    if "pos_embed" in masks:
        masks["pos_embed"][..., :d] = True
    for i, (h, m) in enumerate(zip(subnet.num_heads, subnet.mlp_hidden_dims(), strict=True)):
        q = h * hd
        p = f"blocks.{i}."
        for name in masks:
            if name.startswith(p) and name.endswith("_table"):
                masks[name][:] = True  # relative-position tables: whole, for every subnet
        for name in ("norm1", "norm2"):
            masks[p + name + ".weight"][:d] = True
            masks[p + name + ".bias"][:d] = True
        for part in range(3):
            masks[p + "qkv.weight"][part * qmax : part * qmax + q, :d] = True
            masks[p + "qkv.bias"][part * qmax : part * qmax + q] = True
        masks[p + "proj.weight"][:d, :q] = True
        masks[p + "proj.bias"][:d] = True
        masks[p + "fc1.weight"][:m, :d] = True
        masks[p + "fc1.bias"][:m] = True
        masks[p + "fc2.weight"][:d, :m] = True
        masks[p + "fc2.bias"][:d] = True
    masks["norm.weight"][:d] = True
    masks["norm.bias"][:d] = True
    masks["head.weight"][:, :d] = True
    masks["head.bias"][:] = True
    return masks


@pytest.mark.parametrize(
    ("pool", "pos_embed", "rel_pos"),
    [*((pool, pos, "none") for pool, pos in VARIANTS), ("cls_mean", "learned", "autoformer")],
)
def test_gradients_touch_exactly_the_slices(
    tiny_space: SearchSpace, pool: str, pos_embed: str, rel_pos: str
) -> None:
    space = dataclasses.replace(tiny_space, pool=pool, pos_embed=pos_embed, rel_pos=rel_pos)
    if rel_pos == "autoformer":  # a 3 x 3 grid clamped at distance 1 uses every table row
        space = dataclasses.replace(space, img_size=12, rel_pos_max_distance=1)
    for subnet in [
        space.smallest(),
        SubnetConfig(12, 2, (2, 1), (1.0, 2.5)),
        SubnetConfig(8, 3, (3, 1, 2), (2.5, 1.0, 2.5)),
    ]:
        net = Supernet(space)
        x = _images(space, 8)
        y = torch.randint(0, space.num_classes, (8,))
        F.cross_entropy(net(x, subnet), y).backward()
        masks = _expected_masks(space, subnet)
        for name, param in net.named_parameters():
            mask = masks[name]
            if not mask.any():
                assert param.grad is None, f"{name} is not used by {subnet} yet got a gradient"
                continue
            assert param.grad is not None, name
            touched = param.grad != 0
            assert not touched[~mask].any(), f"{name} has gradient outside its slice"
            if name.endswith("qkv.bias"):
                # A key bias shifts every score of a query equally; softmax cancels it, so its
                # gradient is zero in exact arithmetic. Only Q and V biases must be touched.
                rows = mask.clone()
                qmax = space.max_qkv_dim
                rows[qmax : 2 * qmax] = False
                assert touched[rows].all(), name
            else:
                assert touched[mask].all(), f"{name} has untouched entries inside its slice"


def test_forward_rejects_bad_subnet_and_input(tiny_space: SearchSpace) -> None:
    net = Supernet(tiny_space)
    with pytest.raises(SpaceError, match="embed_dim 16 is not a choice of this space"):
        net(_images(tiny_space), SubnetConfig(16, 1, (1,), (1.0,)))
    with pytest.raises(
        ValueError, match=r"expected images of shape \(batch, 2, 8, 8\).*\(3, 3, 8, 8\)"
    ):
        net(torch.randn(3, 3, 8, 8), tiny_space.smallest())
    with pytest.raises(TypeError, match="expected a SearchSpace"):
        Supernet({"embed_dim": [8]})  # type: ignore[arg-type]


def test_subnet_is_an_argument_not_state(tiny_space: SearchSpace) -> None:
    net = Supernet(tiny_space).eval()
    x = _images(tiny_space)
    small, large = tiny_space.smallest(), tiny_space.largest()
    with torch.no_grad():
        a = net(x, small)
        net(x, large)
        assert torch.equal(net(x, small), a)


def test_save_and_load_without_supernet(tmp_path: Path) -> None:
    space = SearchSpace.preset("digits")
    net = Supernet(space).eval()
    subnet = SubnetConfig(48, 3, (1, 2, 4), (2.0, 4.0, 3.0))
    x = _images(space)
    with torch.no_grad():
        expected = net(x, subnet)
    save_subnet(net.extract(subnet), space, tmp_path / "export", metadata={"val_acc": 0.5})
    del net
    model = load_subnet(tmp_path / "export")
    assert model.subnet == subnet and not model.training
    with torch.no_grad():
        assert (model(x) - expected).abs().max().item() <= 1e-5
    assert VisionTransformer.from_config(model.config()).subnet == subnet


def test_weights_of_another_subnet_name_the_first_mismatch(tmp_path: Path) -> None:
    """torch's first line only says there are errors; the message names the first of them."""
    space = SearchSpace.preset("digits")
    net = Supernet(space).eval()
    save_subnet(net.extract(SubnetConfig(32, 2, (1, 1), (2.0, 2.0))), space, tmp_path / "a")
    save_subnet(net.extract(SubnetConfig(48, 2, (1, 1), (2.0, 2.0))), space, tmp_path / "b")
    (tmp_path / "a" / "subnet.yaml").write_bytes((tmp_path / "b" / "subnet.yaml").read_bytes())
    with pytest.raises(CheckpointError) as info:
        load_subnet(tmp_path / "a")
    message = str(info.value)
    assert message.startswith(
        f"{tmp_path / 'a' / 'model.safetensors'} does not match subnet.yaml ("
    )
    assert (
        "size mismatch for cls_token: copying a param with shape torch.Size([1, 1, 32])" in message
    )
    assert re.search(r"\(and \d+ more\)\); export the subnet again", message), message
    assert "Error(s) in loading state_dict" not in message
    # A deeper subnet's weights: every unexpected key counts (torch lists them on one line)
    save_subnet(net.extract(SubnetConfig(32, 3, (1, 1, 1), (2.0,) * 3)), space, tmp_path / "c")
    (tmp_path / "a" / "model.safetensors").write_bytes(
        (tmp_path / "c" / "model.safetensors").read_bytes()
    )
    (tmp_path / "a" / "subnet.yaml").write_bytes((tmp_path / "c" / "subnet.yaml").read_bytes())
    (tmp_path / "c" / "subnet.yaml").write_bytes((tmp_path / "b" / "subnet.yaml").read_bytes())
    with pytest.raises(CheckpointError) as info:
        load_subnet(tmp_path / "c")
    found = net.extract(SubnetConfig(32, 3, (1, 1, 1), (2.0,) * 3)).state_dict()
    wanted = net.extract(SubnetConfig(48, 2, (1, 1), (2.0, 2.0))).state_dict()
    unexpected = [k for k in found if k not in wanted]
    resized = [k for k in wanted if k in found and found[k].shape != wanted[k].shape]
    assert len(unexpected) > 1 and resized
    count = len(unexpected) + len(resized) - 1
    assert f"(and {count} more)); export" in str(info.value)
    assert '(unexpected key "blocks.2.' in str(info.value)
    weights = tmp_path / "a" / "model.safetensors"
    weights.unlink()
    weights.mkdir()
    with pytest.raises(CheckpointError, match=r"is not a regular file \(a directory"):
        load_subnet(tmp_path / "a")


def _spaces_of_every_kind() -> list[Space]:
    spaces = [Space.preset(p.stem) for p in sorted(PRESETS_DIR.glob("*.yaml"))]
    digits = SearchSpace.preset("digits")
    spaces += [dataclasses.replace(digits, pool=p, pos_embed=e) for p, e in VARIANTS]
    spaces += [dataclasses.replace(digits, pool=p, rel_pos=r) for p, r, _ in AUTOFORMER_OPTIONS]
    spaces.append(  # windows larger than their maps, and windows that pad them
        SwinSpace(
            embed_dim=[[8, 12], [16, 20], [24, 32]],
            depth=[[1, 2], [1, 3], [1, 2]],
            num_heads=[[1, 2], [2, 3], [2, 4]],
            mlp_ratio=[1.0, 2.5],
            window_size=[[3, 5, 8, 16], [3, 4], [2, 7]],
            img_size=16,
            patch_size=2,
            in_chans=2,
            num_classes=5,
            head_dim=4,
        )
    )
    return spaces


@pytest.mark.parametrize(
    "space", _spaces_of_every_kind(), ids=lambda s: s.name or f"{s.family}_custom"
)
def test_weight_count_is_the_supernet_built(space: Space) -> None:
    """``weight_count`` (the memory check before building) counts what building allocates."""
    with torch.device("meta"):
        net = Supernet(space)
    assert weight_count(space) == sum(p.numel() for p in net.parameters())
