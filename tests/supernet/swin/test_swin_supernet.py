from __future__ import annotations

import dataclasses
import random

import pytest
import torch
import torch.nn.functional as F

from supernet import SubnetConfig
from supernet.space import SpaceError
from supernet.swin.model import (
    SwinTransformer,
    merge_neighbours,
    relative_position_index,
    shifted_window_attention,
    window_attention,
    window_shift,
)
from supernet.swin.space import SwinSpace, SwinSubnet
from supernet.swin.supernet import SwinSupernet


def _images(space: SwinSpace, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, space.in_chans, space.img_size, space.img_size)


def _uniform(space: SwinSpace, c: tuple[int, ...], d: tuple[int, ...], h, r, w) -> SwinSubnet:
    """Per stage one heads / ratio / window value for every block."""
    return space.validate(
        SwinSubnet(
            c,
            d,
            tuple((x,) * n for x, n in zip(h, d, strict=True)),
            tuple((float(x),) * n for x, n in zip(r, d, strict=True)),
            tuple((x,) * n for x, n in zip(w, d, strict=True)),
        )
    )


def _shifted(space: SwinSpace) -> SwinSubnet:
    """The deepest subnet with the smallest windows: shifted wherever a window is below the map."""
    large = space.largest()
    return dataclasses.replace(
        large,
        window_size=tuple((w[0],) * d for w, d in zip(space.window_size, large.depth, strict=True)),
    )


def _cases(space: SwinSpace, n: int, seed: int = 0) -> list[SwinSubnet]:
    rng = random.Random(seed)
    fixed = [space.smallest(), space.largest(), space.middle(), _shifted(space)]
    return [*fixed, *(space.sample(rng) for _ in range(n))]


def _block_kinds(space: SwinSpace, subnet: SwinSubnet) -> set[tuple[bool, bool]]:
    """(padded, shifted) of every active block."""
    kinds = set()
    for s in range(space.num_stages):
        r = space.stage_resolution(s)
        for j, w in enumerate(subnet.window_size[s]):
            kinds.add((r % w != 0, window_shift(r, w, j, space.shift) > 0))
    return kinds


# -- supernet == extracted model -----------------------------------------------------------------
@pytest.mark.parametrize("preset", ["swin_digits", "swin_fashion_mnist"])
def test_extracted_logits_equal_supernet_presets(preset: str) -> None:
    space = SwinSpace.preset(preset)
    net = SwinSupernet(space).eval()
    x = _images(space, 2)
    kinds = set()
    for subnet in _cases(space, 6):
        model = net.extract(subnet)
        assert isinstance(model, SwinTransformer) and not model.training
        assert model.subnet == subnet
        with torch.no_grad():
            diff = (net(x, subnet) - model(x)).abs().max().item()
        assert diff <= 1e-5, (subnet, diff)
        kinds |= _block_kinds(space, subnet)
    assert kinds == {(False, True), (False, False)}  # shifted and unshifted blocks, no padding


@pytest.mark.parametrize("shift", ["alternate", "none"])
def test_extracted_logits_equal_supernet_padded(padded_swin: SwinSpace, shift: str) -> None:
    space = dataclasses.replace(padded_swin, shift=shift)
    net = SwinSupernet(space).eval()
    x = _images(space)
    kinds = set()
    for subnet in _cases(space, 10, seed=1):
        with torch.no_grad():
            diff = (net(x, subnet) - net.extract(subnet)(x)).abs().max().item()
        assert diff <= 1e-5, (subnet, diff)
        kinds |= _block_kinds(space, subnet)
    if shift == "alternate":
        assert kinds == {(True, True), (True, False), (False, False)}
    else:
        assert kinds == {(True, False), (False, False)}


def test_subnet_is_an_argument_not_state() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space).eval()
    x = _images(space)
    small, large = space.smallest(), space.largest()
    with torch.no_grad():
        a = net(x, small)
        net(x, large)
        assert torch.equal(net(x, small), a)


def test_extracted_model_owns_its_weights() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space).eval()
    model = net.extract(space.largest())
    net_storages = {p.untyped_storage().data_ptr() for p in net.parameters()}
    assert all(p.untyped_storage().data_ptr() not in net_storages for p in model.parameters())
    x = _images(space)
    with torch.no_grad():
        before = model(x)
        for p in net.parameters():
            p.add_(1.0)
        assert torch.equal(model(x), before)


def test_forward_rejects_bad_subnet_and_input() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space)
    with pytest.raises(SpaceError, match="a vit subnet was given to a swin search space"):
        net(_images(space), SubnetConfig(16, 1, (1,), (2.0,)))
    bad = dataclasses.replace(space.smallest(), window_size=((4,), (4,)))
    with pytest.raises(SpaceError, match=r"window_size\[1\]\[0\] = 4 is not a choice of stage 1"):
        net(_images(space), bad)
    with pytest.raises(
        ValueError, match=r"expected images of shape \(batch, 1, 8, 8\).*\(3, 3, 8, 8\)"
    ):
        net(torch.randn(3, 3, 8, 8), space.smallest())
    with pytest.raises(TypeError, match="expected a SwinSpace"):
        SwinSupernet({"embed_dim": [[8]]})  # type: ignore[arg-type]


def test_masks_and_indices_are_cached_outside_the_state_dict() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space).eval()
    subnet = _uniform(space, (16, 32), (2, 2), (1, 2), (2, 2), (2, 2))
    names = set(net.state_dict())
    with torch.no_grad():
        net(_images(space), subnet)
    assert set(net.state_dict()) == names
    assert not any("mask" in n or "index" in n for n in names)
    assert not list(net.buffers())
    masks = dict(net._windows.masks)
    assert list(masks) == [(4, 4, 2, 1, torch.device("cpu"), torch.float32)]
    with torch.no_grad():
        net(_images(space), subnet)
    assert all(net._windows.masks[k] is v for k, v in masks.items())  # reused, not rebuilt


def test_no_weight_decay_names_every_bias_table() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space)
    names = net.no_weight_decay()
    tables = {n for n, p in net.named_parameters() if p.shape[-1] in (2, 4) and p.ndim == 2}
    assert names == {n for n in tables if n.endswith("relative_position_bias_table")}
    assert len(names) == sum(space.max_depth(s) for s in range(space.num_stages)) == 5
    model = net.extract(space.largest())
    assert model.no_weight_decay() == {
        n for n, _ in model.named_parameters() if n.endswith("attn.relative_position_bias_table")
    }
    assert len(model.no_weight_decay()) == 5


# -- the weight-sharing rules, checked against independent formulas ------------------------------
def test_bias_table_crop_keeps_every_offset() -> None:
    """Offset (dy, dx) reads the same stored entry at every window size (centre crop)."""
    space = SwinSpace(
        embed_dim=[[8]],
        depth=[[1]],
        num_heads=[[1, 2, 3]],
        mlp_ratio=[1.0],
        window_size=[[2, 3, 5]],
        img_size=10,
        patch_size=1,
        in_chans=1,
        num_classes=2,
        head_dim=2,
    )
    block = SwinSupernet(space).layers[0].blocks[0]
    big, heads = 5, 3
    table = block.relative_position_bias_table.detach().view(2 * big - 1, 2 * big - 1, heads)
    for w in (2, 3, 5):
        for h in (1, 3):
            crop = block.bias_table(w, h).detach().view(2 * w - 1, 2 * w - 1, h)
            for dy in range(-(w - 1), w):
                for dx in range(-(w - 1), w):
                    expected = table[dy + big - 1, dx + big - 1, :h]
                    assert torch.equal(crop[dy + w - 1, dx + w - 1], expected), (w, h, dy, dx)


def test_relative_position_index_is_timms() -> None:
    from timm.models.swin_transformer import get_relative_position_index

    for w in (1, 2, 3, 7):
        assert torch.equal(relative_position_index(w), get_relative_position_index(w, w))


def test_patch_merging_slices_each_neighbour_block() -> None:
    """A narrower input keeps, for each of the four neighbours, its first channels' weights."""
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space)
    merge = net.layers[1].downsample
    m, c_in, c_out = 32, 16, 48
    sliced = merge.sliced(c_in, c_out)
    weight = merge.reduction.weight
    for k in range(4):
        assert torch.equal(
            sliced["reduction.weight"][:, k * c_in : (k + 1) * c_in],
            weight[:c_out, k * m : k * m + c_in],
        )
        assert torch.equal(
            sliced["norm.weight"][k * c_in : (k + 1) * c_in],
            merge.norm.weight[k * m : k * m + c_in],
        )
    # timm's neighbour order: (0,0), (1,0), (0,1), (1,1) as (row, column)
    x = torch.arange(4 * 4 * 2, dtype=torch.float32).view(1, 4, 4, 2)
    merged = merge_neighbours(x)
    for k, (dr, dc) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        assert torch.equal(merged[0, 1, 0, 2 * k : 2 * k + 2], x[0, 2 + dr, 0 + dc])


def test_padding_comes_before_the_shift_as_in_torchvision() -> None:
    """Padded SW-MSA equals torchvision's (pad, then roll, mask on the padded map)."""
    from torchvision.models.swin_transformer import shifted_window_attention as tv_attention

    torch.manual_seed(0)
    heads, head_dim, window, shift = 2, 4, 3, 1
    dim = heads * head_dim  # torchvision assumes head_dim = C / heads
    x = torch.randn(2, 4, 4, dim)  # 4x4 map, windows of 3: padded to 6x6
    qkv, proj = torch.nn.Linear(dim, 3 * dim), torch.nn.Linear(dim, dim)
    table = torch.randn((2 * window - 1) ** 2, heads)
    index = relative_position_index(window)
    bias = table[index.view(-1)].view(9, 9, heads).permute(2, 0, 1)
    padded = 6
    from supernet.swin.model import shifted_window_mask

    mask = shifted_window_mask(padded, padded, window, shift)

    def attend(windows: torch.Tensor) -> torch.Tensor:
        return proj(window_attention(qkv(windows), heads, head_dim, bias, mask))

    ours = shifted_window_attention(x, window, shift, attend)
    theirs = tv_attention(
        x,
        qkv.weight,
        proj.weight,
        bias.unsqueeze(0),
        [window, window],
        heads,
        [shift, shift],
        qkv_bias=qkv.bias,
        proj_bias=proj.bias,
        training=False,
    )
    assert (ours - theirs).abs().max().item() <= 1e-5


# -- gradients touch exactly the sliced entries --------------------------------------------------
def _expected_masks(net: SwinSupernet, subnet: SwinSubnet) -> dict[str, torch.Tensor]:
    """Which entries of each supernet parameter ``subnet`` uses, written out independently."""
    space = net.space
    masks = {k: torch.zeros(v.shape, dtype=torch.bool) for k, v in net.named_parameters()}
    c = subnet.embed_dim
    for name in ("patch_embed.weight", "patch_embed.bias", "patch_norm.weight", "patch_norm.bias"):
        masks[name][: c[0]] = True
    for s in range(space.num_stages):
        p = f"layers.{s}."
        if s:
            m = space.max_embed_dim(s - 1)
            for k in range(4):
                masks[p + "downsample.norm.weight"][k * m : k * m + c[s - 1]] = True
                masks[p + "downsample.norm.bias"][k * m : k * m + c[s - 1]] = True
                masks[p + "downsample.reduction.weight"][: c[s], k * m : k * m + c[s - 1]] = True
        qmax, big, hmax = space.max_qkv_dim(s), space.max_window(s), space.max_num_heads(s)
        hidden = subnet.mlp_hidden_dims()[s]
        for j, (h, _, w) in enumerate(subnet.blocks(s)):
            b = f"{p}blocks.{j}."
            q = h * space.head_dim
            for name in ("norm1", "norm2"):
                masks[b + name + ".weight"][: c[s]] = True
                masks[b + name + ".bias"][: c[s]] = True
            for part in range(3):
                masks[b + "qkv.weight"][part * qmax : part * qmax + q, : c[s]] = True
                masks[b + "qkv.bias"][part * qmax : part * qmax + q] = True
            masks[b + "proj.weight"][: c[s], :q] = True
            masks[b + "proj.bias"][: c[s]] = True
            masks[b + "fc1.weight"][: hidden[j], : c[s]] = True
            masks[b + "fc1.bias"][: hidden[j]] = True
            masks[b + "fc2.weight"][: c[s], : hidden[j]] = True
            masks[b + "fc2.bias"][: c[s]] = True
            table = masks[b + "relative_position_bias_table"].view(2 * big - 1, 2 * big - 1, hmax)
            table[big - w : big + w - 1, big - w : big + w - 1, :h] = True
    masks["norm.weight"][: c[-1]] = True
    masks["norm.bias"][: c[-1]] = True
    masks["head.weight"][:, : c[-1]] = True
    masks["head.bias"][:] = True
    return masks


def test_gradients_touch_exactly_the_slices(padded_swin: SwinSpace) -> None:
    space = padded_swin
    subnets = [
        space.smallest(),
        space.validate(
            SwinSubnet(
                (8, 20, 24),
                (2, 3, 1),
                ((2, 1), (2, 3, 2), (2,)),
                ((2.5, 1.0), (1.0, 2.5, 1.0), (2.5,)),
                ((3, 5), (4, 3, 3), (2,)),
            )
        ),
        space.validate(
            SwinSubnet(
                (12, 16, 32),
                (1, 2, 2),
                ((1,), (3, 2), (4, 2)),
                ((1.0,), (2.5, 2.5), (1.0, 2.5)),
                ((8,), (3, 4), (2, 2)),
            )
        ),
    ]
    for subnet in subnets:
        net = SwinSupernet(space)
        x = _images(space, 6)
        y = torch.randint(0, space.num_classes, (6,))
        F.cross_entropy(net(x, subnet), y).backward()
        masks = _expected_masks(net, subnet)
        checked_tables = 0
        for name, param in net.named_parameters():
            mask = masks[name]
            if not mask.any():
                assert param.grad is None, f"{name} is not used by {subnet} yet got a gradient"
                continue
            assert param.grad is not None, name
            touched = param.grad != 0
            assert not touched[~mask].any(), f"{name} has gradient outside its slice"
            if name.endswith("qkv.bias"):
                # A key bias shifts every score of a query equally: softmax cancels it.
                rows = mask.clone()
                stage = int(name.split(".")[1])
                qmax = space.max_qkv_dim(stage)
                rows[qmax : 2 * qmax] = False
                assert touched[rows].all(), name
            else:
                assert touched[mask].all(), f"{name} has untouched entries inside its slice"
            checked_tables += name.endswith("relative_position_bias_table")
        assert checked_tables == sum(subnet.depth)


def test_drop_path_acts_in_training_only() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space, drop_path_rate=0.4)
    rates = [b.drop_path for stage in net.layers for b in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])  # linear over the deepest subnet
    subnet, x = space.largest(), _images(space, 8)
    net.train()
    with torch.no_grad():
        torch.manual_seed(0)
        a = net(x, subnet)
        torch.manual_seed(1)
        assert not torch.allclose(a, net(x, subnet))
        net.eval()
        assert (net(x, subnet) - net.extract(subnet)(x)).abs().max().item() <= 1e-5


def test_float64_supernet_extracts_float64_models() -> None:
    space = SwinSpace.preset("swin_digits")
    net = SwinSupernet(space).double().eval()
    subnet = _shifted(space)
    model = net.extract(subnet)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    x = _images(space).double()
    with torch.no_grad():
        assert (net(x, subnet) - model(x)).abs().max().item() <= 1e-12
