from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch

from supernet.common.errors import UserError
from supernet.swin.model import SwinTransformer, shifted_window_attention
from supernet.swin.space import SwinSpace, SwinSubnet
from supernet.swin.supernet import SwinSupernet

timm_swin = pytest.importorskip("timm.models.swin_transformer")


def _images(space: SwinSpace, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, space.in_chans, space.img_size, space.img_size, generator=g)


def _timm_expressible(space: SwinSpace, rng: random.Random) -> SwinSubnet:
    """A random subnet with doubling widths and one heads / ratio / window per stage."""
    while True:
        c0 = rng.choice(space.embed_dim[0])
        widths = tuple(c0 * 2**s for s in range(space.num_stages))
        if all(c in space.embed_dim[s] for s, c in enumerate(widths)):
            break
    depth = tuple(rng.choice(d) for d in space.depth)
    return space.validate(
        SwinSubnet(
            widths,
            depth,
            tuple((rng.choice(h),) * d for h, d in zip(space.num_heads, depth, strict=True)),
            tuple((rng.choice(r),) * d for r, d in zip(space.mlp_ratio, depth, strict=True)),
            tuple((rng.choice(w),) * d for w, d in zip(space.window_size, depth, strict=True)),
        )
    )


def _timm_model(model: SwinTransformer) -> torch.nn.Module:
    reference = timm_swin.SwinTransformer(**model.timm_kwargs()).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    return reference


@pytest.mark.parametrize("preset", ["swin_digits", "swin_fashion_mnist"])
def test_timm_loads_the_state_dict_and_gives_the_same_logits(preset: str) -> None:
    space = SwinSpace.preset(preset)
    net = SwinSupernet(space).eval()
    rng = random.Random(preset)
    x = _images(space)
    large = space.largest()
    shifted_everywhere = dataclasses.replace(  # the smallest windows in the deepest subnet
        large,
        window_size=tuple((w[0],) * d for w, d in zip(space.window_size, large.depth, strict=True)),
    )
    subnets = [
        space.smallest(),
        large,
        shifted_everywhere,
        *(_timm_expressible(space, rng) for _ in range(3)),
    ]
    worst, shifted = 0.0, 0
    for subnet in subnets:
        model = net.extract(subnet)
        reference = _timm_model(model)
        with torch.no_grad():
            worst = max(worst, (reference(x) - model(x)).abs().max().item())
        shifted += sum(1 for m in reference.modules() if getattr(m, "attn_mask", None) is not None)
        assert {n for n, _ in reference.named_buffers()} == {n for n, _ in model.named_buffers()}
    assert worst <= 1e-5
    assert shifted > 0  # SW-MSA blocks were compared too


def test_timm_parity_on_padded_unshifted_windows(padded_swin: SwinSpace) -> None:
    """timm and torchvision agree when nothing is shifted: padded W-MSA matches timm exactly."""
    space = padded_swin
    subnet = space.validate(
        SwinSubnet(
            (8, 16, 32), (1, 1, 1), ((2,), (2,), (4,)), ((1.0,), (2.5,), (1.0,)), ((3,), (3,), (2,))
        )
    )
    model = SwinSupernet(space).eval().extract(subnet)
    x = _images(space)
    with torch.no_grad():
        assert (_timm_model(model)(x) - model(x)).abs().max().item() <= 1e-5


def test_padded_shifted_blocks_differ_from_timm(padded_swin: SwinSpace) -> None:
    """timm rolls before padding (pytorch-image-models#2438); we pad first, as torchvision."""
    space = padded_swin
    subnet = space.validate(
        SwinSubnet(
            (8, 16, 32),
            (2, 1, 1),
            ((2, 2), (2,), (4,)),
            ((1.0,) * 2, (1.0,), (1.0,)),
            ((3, 3), (3,), (2,)),
        )
    )
    model = SwinSupernet(space).eval().extract(subnet)
    with pytest.raises(UserError, match=r"pads its 8x8 map .* pytorch-image-models#2438") as info:
        model.timm_kwargs()
    assert "\n" not in str(info.value)
    kwargs = {
        "img_size": 16,
        "patch_size": 2,
        "in_chans": 2,
        "num_classes": 5,
        "embed_dim": 8,
        "depths": (2, 1, 1),
        "num_heads": (2, 2, 4),
        "head_dim": 4,
        "window_size": ((3, 3), (3, 3), (2, 2)),
        "mlp_ratio": (1.0, 1.0, 1.0),
        "drop_path_rate": 0.0,
    }
    reference = timm_swin.SwinTransformer(**kwargs).eval()
    reference.load_state_dict(model.state_dict(), strict=True)
    x = _images(space)
    with torch.no_grad():
        h = model.patch_embed(x)
        assert torch.equal(h, reference.patch_embed(x))
        ours, theirs = model.layers[0].blocks[1], reference.layers[0].blocks[1]
        assert (ours.window, ours.shift) == (3, 1) == (theirs.window_size[0], theirs.shift_size[0])
        # the unshifted first block agrees; the padded shifted second block does not
        h = ours_first = model.layers[0].blocks[0](h)
        assert (
            reference.layers[0].blocks[0](reference.patch_embed(x)) - ours_first
        ).abs().max() < 1e-5
        branch = shifted_window_attention(
            ours.norm1(h), ours.window, ours.shift, lambda w: ours.attn(w, ours.attn_mask)
        )
        timm_branch = theirs._attn(theirs.norm1(h))
        assert (branch - timm_branch).abs().max() > 0.1 * branch.abs().max()
        # ... and only in the rows and columns that the roll wrapped around (0 and 7)
        assert (branch - timm_branch)[:, 1:7, 1:7].abs().max() < 1e-5


def test_timm_kwargs_refuses_what_timm_cannot_express() -> None:
    space = SwinSpace.preset("swin_fashion_mnist")
    net = SwinSupernet(space)
    cases = {
        "doubles its width every stage; this model's widths are 48-64": SwinSubnet(
            (48, 64), (1, 2), ((1,), (2, 2)), ((2.0,), (2.0, 2.0)), ((7,), (7, 7))
        ),
        "takes one num_heads per stage; stage 1 has 2/4": SwinSubnet(
            (32, 64), (1, 2), ((1,), (2, 4)), ((2.0,), (2.0, 2.0)), ((7,), (7, 7))
        ),
        "takes one mlp_ratio per stage; stage 0 has 2/3": SwinSubnet(
            (32, 64), (2, 2), ((1, 1), (2, 2)), ((2.0, 3.0), (2.0, 2.0)), ((7, 7), (7, 7))
        ),
        "takes one window_size per stage; stage 0 has 7/14": SwinSubnet(
            (32, 64), (2, 2), ((1, 1), (2, 2)), ((2.0, 2.0), (2.0, 2.0)), ((7, 14), (7, 7))
        ),
    }
    for message, subnet in cases.items():
        with pytest.raises(UserError, match=message):
            net.extract(subnet).timm_kwargs()
    unshifted = SwinSupernet(dataclasses.replace(space, shift="none"))
    subnet = SwinSubnet((32, 64), (2, 2), ((1, 1), (2, 2)), ((2.0,) * 2,) * 2, ((7, 7), (7, 7)))
    with pytest.raises(UserError, match="always shifts odd blocks; stage 0 block 1 does not"):
        unshifted.extract(subnet).timm_kwargs()
    # a stage that never shifts anyway (window = map) is fine without shifting
    fine = SwinSubnet((32, 64), (2, 2), ((1, 1), (2, 2)), ((2.0,) * 2,) * 2, ((14, 14), (7, 7)))
    assert unshifted.extract(fine).timm_kwargs()["window_size"] == ((14, 14), (7, 7))


def test_swin_t_state_dict_is_timms() -> None:
    space = SwinSpace.preset("swin_tiny")
    swin_t = SwinSubnet(
        (96, 192, 384, 768),
        (2, 2, 6, 2),
        ((3,) * 2, (6,) * 2, (12,) * 6, (24,) * 2),
        ((4.0,) * 2, (4.0,) * 2, (4.0,) * 6, (4.0,) * 2),
        ((7,) * 2, (7,) * 2, (7,) * 6, (7,) * 2),
    )
    with torch.device("meta"):
        ours = SwinTransformer.from_space(space, swin_t)
        theirs = timm_swin.swin_tiny_patch4_window7_224()
    assert ours.timm_kwargs()["window_size"] == ((7, 7),) * 4
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {n for n, _ in ours.named_buffers()} == {n for n, _ in theirs.named_buffers()}
    assert ours.no_weight_decay() == theirs.no_weight_decay()


def test_constructor_takes_plain_sizes_and_config_round_trips() -> None:
    model = SwinTransformer(
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        embed_dim=(16, 32),
        depths=(2, 1),
        num_heads=(1, [4]),
        mlp_ratio=2,
        window_size=(2, 8),  # 8 covers the 2x2 map of stage 1: clamped to 2
        head_dim=8,
    )
    assert model.subnet == SwinSubnet(
        (16, 32), (2, 1), ((1, 1), (4,)), ((2.0, 2.0), (2.0,)), ((2, 2), (2,))
    )
    assert model.layers[0].blocks[1].shift == 1 and model.layers[0].blocks[0].shift == 0
    assert model.layers[0].blocks[1].attn_mask is not None
    rebuilt = SwinTransformer.from_config(model.config())
    assert rebuilt.subnet == model.subnet and rebuilt.config() == model.config()
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="must be a whole multiple of 2 for 2 stages"):
        SwinTransformer(
            img_size=6,
            patch_size=2,
            in_chans=1,
            num_classes=10,
            embed_dim=(16, 32),
            depths=(2, 1),
            num_heads=1,
            mlp_ratio=2,
            window_size=2,
            head_dim=8,
        )


def test_drop_path_follows_timm_linear_rule() -> None:
    space = SwinSpace.preset("swin_digits")
    subnet = space.largest()
    model = SwinTransformer.from_space(space, subnet, drop_path_rate=0.4)
    rates = [b.drop_path for stage in model.layers for b in stage.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    reference = timm_swin.SwinTransformer(**{**model.timm_kwargs(), "drop_path_rate": 0.4})
    timm_rates = [
        b.drop_path1.drop_prob if hasattr(b.drop_path1, "drop_prob") else 0.0
        for stage in reference.layers
        for b in stage.blocks
    ]
    assert rates == pytest.approx(timm_rates)


@pytest.mark.slow  # the dynamo export alone takes about 20 s on 2 cores
def test_onnx_export_matches_onnxruntime(tmp_path: Path, padded_swin: SwinSpace) -> None:
    """Dynamo export (with rolls, padding and masks), dynamic batch, <= 1e-4 from PyTorch."""
    onnxruntime = pytest.importorskip("onnxruntime")
    space = padded_swin
    subnet = space.validate(
        SwinSubnet(
            (12, 20, 24),
            (2, 1, 1),
            ((1, 2), (3,), (2,)),
            ((2.5, 1.0), (1.0,), (1.0,)),
            ((3, 5), (3,), (2,)),
        )
    )
    model = SwinSupernet(space).eval().extract(subnet)
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (_images(space, 2),),
        str(path),
        dynamo=True,
        external_data=False,
        verbose=False,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch in (1, 4):
        x = _images(space, batch, seed=batch)
        (got,) = session.run(["logits"], {"images": x.numpy()})
        with torch.inference_mode():
            want = model(x)
        worst = max(worst, float((torch.from_numpy(got) - want).abs().max()))
    assert worst <= 1e-4
