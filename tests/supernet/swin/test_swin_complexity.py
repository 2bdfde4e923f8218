from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from supernet import complexity
from supernet.space import PRESETS_DIR
from supernet.swin.complexity import block_costs
from supernet.swin.space import SwinSpace, SwinSubnet
from supernet.swin.supernet import SwinSupernet

SWIN_PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("swin_*.yaml"))
N_SUBNETS = 200

SWIN_T = SwinSubnet(
    embed_dim=(96, 192, 384, 768),
    depth=(2, 2, 6, 2),
    num_heads=((3, 3), (6, 6), (12,) * 6, (24, 24)),
    mlp_ratio=((4.0, 4.0), (4.0, 4.0), (4.0,) * 6, (4.0, 4.0)),
    window_size=((7, 7), (7, 7), (7,) * 6, (7, 7)),
)
S3_T = dataclasses.replace(SWIN_T, window_size=((7, 7), (7, 7), (14,) * 6, (7, 7)))


def _check_exact(space: SwinSpace, subnets: list[SwinSubnet], device: str) -> None:
    with torch.device(device):
        net = SwinSupernet(space)
    for subnet in subnets:
        model = net.extract(subnet)
        n_params = sum(p.numel() for p in model.parameters())
        cost = complexity.breakdown(space, subnet)
        assert cost.params == n_params, subnet
        assert cost.flops == complexity.count_flops(model, space), subnet
        assert cost.flops == 2 * cost.macs == complexity.flops(space, subnet)


def _random_subnets(space: SwinSpace, n: int, seed: str) -> list[SwinSubnet]:
    rng = random.Random(seed)
    subnets = [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(n))]
    assert len(set(subnets)) > n * 0.9
    return subnets


def _padded_subnets(space: SwinSpace, n: int) -> list[SwinSubnet]:
    subnets = _random_subnets(space, n, space.shift)
    padded = [s for s in subnets if any(8 % w for w in s.window_size[0]) or 3 in s.window_size[1]]
    assert len(padded) > n // 2
    return subnets


@pytest.mark.parametrize("preset", SWIN_PRESETS)
def test_cost_model_matches_flop_counter_quick(preset: str) -> None:
    """A few subnets of every preset on every run; the 200-subnet check is marked slow."""
    space = SwinSpace.preset(preset)
    _check_exact(
        space, _random_subnets(space, 8, preset), "meta" if space.img_size >= 224 else "cpu"
    )


@pytest.mark.slow  # FlopCounterMode costs ~0.1 s per small subnet, ~0.5 s per 224 px one
@pytest.mark.parametrize("preset", SWIN_PRESETS)
def test_cost_model_matches_flop_counter(preset: str) -> None:
    """200 random subnets per preset (plus the extremes); 224 px on the meta device."""
    space = SwinSpace.preset(preset)
    subnets = _random_subnets(space, N_SUBNETS, preset)
    _check_exact(space, subnets, "meta" if space.img_size >= 224 else "cpu")


@pytest.mark.parametrize("shift", ["alternate", "none"])
def test_cost_model_matches_flop_counter_on_padded_maps_quick(
    padded_swin: SwinSpace, shift: str
) -> None:
    """Q/K/V, attention and projection on the padded windows, the MLP on the real map."""
    space = dataclasses.replace(padded_swin, shift=shift)
    _check_exact(space, _padded_subnets(space, 12), "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("shift", ["alternate", "none"])
def test_cost_model_matches_flop_counter_on_padded_maps(padded_swin: SwinSpace, shift: str) -> None:
    space = dataclasses.replace(padded_swin, shift=shift)
    _check_exact(space, _padded_subnets(space, N_SUBNETS), "cpu")


def test_swin_t_and_s3_t_price_as_published_and_as_timm() -> None:
    """Swin-T: 28,288,354 params / 4,490,566,656 MACs; S3-T: 28,328,674 / 4,623,332,352 (timm
    1.0.31 under FlopCounterMode), here and in timm's own model built from ``timm_kwargs``."""
    timm_swin = pytest.importorskip("timm.models.swin_transformer")
    space = SwinSpace.preset("swin_tiny")
    expected = {SWIN_T: (28_288_354, 4_490_566_656), S3_T: (28_328_674, 4_623_332_352)}
    with torch.device("meta"):
        net = SwinSupernet(space)
    for subnet, (n_params, n_macs) in expected.items():
        cost = complexity.breakdown(space, subnet)
        assert (cost.params, cost.macs) == (n_params, n_macs)
        model = net.extract(subnet)
        assert sum(p.numel() for p in model.parameters()) == n_params
        assert complexity.count_flops(model, space) == 2 * n_macs
        with torch.device("meta"):
            reference = timm_swin.SwinTransformer(**model.timm_kwargs())
        assert sum(p.numel() for p in reference.parameters()) == n_params
        assert complexity.count_flops(reference, space) == 2 * n_macs
    with torch.device("meta"):
        registered = timm_swin.swin_tiny_patch4_window7_224()
    assert sum(p.numel() for p in registered.parameters()) == 28_288_354


def test_swin_t_breakdown_matches_the_notes_table() -> None:
    cost = complexity.breakdown(SwinSpace.preset("swin_tiny"), SWIN_T)
    stages = cost.per_stage()
    assert cost.patch_embed_macs == 14_450_688 and cost.head_macs == 768_000
    assert [s["merge_macs"] for s in stages] == [0, 57_802_752, 57_802_752, 57_802_752]
    blocks = [s["macs"] - s["merge_macs"] for s in stages]
    assert blocks == [2 * 376_320_000, 2 * 361_568_256, 6 * 354_192_384, 2 * 350_504_448]
    assert [s["resolution"] for s in stages] == [56, 28, 14, 7]


def test_breakdown_adds_up_and_matches_w_msa_formula() -> None:
    """Unpadded, Q = C, M = 4C: a block costs Omega(W-MSA) = 4NC² + 2w²NC plus 8NC² (MLP)."""
    space = SwinSpace(
        embed_dim=[[32], [64]],
        depth=[[2], [3]],
        num_heads=[[2], [4]],
        mlp_ratio=[4.0],
        window_size=[[4], [4]],
        img_size=32,
        patch_size=2,
        in_chans=3,
        num_classes=7,
        head_dim=16,
    )
    subnet = space.largest()
    cost = complexity.breakdown(space, subnet)
    stages = cost.per_stage()
    for s, (n, c, d) in enumerate([(256, 32, 2), (64, 64, 3)]):
        w_msa = 4 * n * c * c + 2 * 16 * n * c
        assert stages[s]["attn_proj_macs"] + stages[s]["attn_matmul_macs"] == d * w_msa
        assert stages[s]["mlp_macs"] == d * 8 * n * c * c
        assert stages[s]["rel_pos_params"] == d * 49 * (2 if s == 0 else 4)
    assert stages[1]["merge_macs"] == 64 * 4 * 32 * 64 and stages[1]["merge_params"] == 4 * 32 * 64
    assert cost.patch_embed_macs == 256 * 32 * 3 * 4 and cost.head_macs == 64 * 7
    parts = cost.to_dict()
    assert parts["macs"] == sum(v for k, v in parts.items() if k.endswith("_macs"))
    assert parts["params"] == sum(v for k, v in parts.items() if k.endswith("_params"))
    assert parts["flops"] == 2 * parts["macs"]
    stem_and_head = cost.patch_embed_macs + cost.head_macs
    assert sum(s["macs"] for s in stages) + stem_and_head == cost.macs
    outside = cost.patch_embed_params + cost.head_params + 2 * 32 + 2 * 64  # two norms
    assert sum(s["params"] for s in stages) + outside == cost.params


def test_padding_costs_the_padded_windows() -> None:
    """The notes' example: a 5x5 window on a 56x56 map pads to 60x60 for Q/K/V and projection."""
    base = block_costs(56, 96, 3, 32, 384, 7)
    padded = block_costs(56, 96, 3, 32, 384, 5)
    assert padded["padded"] == 60 and padded["windows"] == 144
    assert padded["attn_proj_macs"] * 3136 == base["attn_proj_macs"] * 3600
    assert padded["mlp_macs"] == base["mlp_macs"]
    assert padded["attn_matmul_macs"] == 144 * 2 * 25 * 25 * 96


def test_cost_grows_with_every_dimension() -> None:
    space = SwinSpace.preset("swin_digits")
    base = space.smallest()
    bigger = [
        dataclasses.replace(base, embed_dim=(24, 32)),
        dataclasses.replace(base, embed_dim=(16, 48)),
        dataclasses.replace(
            base,
            depth=(2, 1),
            num_heads=((1, 1), (2,)),
            mlp_ratio=((2.0, 2.0), (2.0,)),
            window_size=((2, 2), (2,)),
        ),
        dataclasses.replace(base, num_heads=((2,), (2,))),
        dataclasses.replace(base, mlp_ratio=((2.0,), (3.0,))),
        dataclasses.replace(base, window_size=((4,), (2,))),
    ]
    small = complexity.breakdown(space, base)
    for subnet in bigger:
        cost = complexity.breakdown(space, subnet)
        assert cost.macs > small.macs, subnet
        if subnet.window_size == base.window_size:
            assert cost.params > small.params, subnet
        else:  # a larger window costs MACs and a larger bias table
            assert cost.rel_pos_params > small.rel_pos_params


def test_cost_model_rejects_subnets_outside_the_space() -> None:
    space = SwinSpace.preset("swin_digits")
    with pytest.raises(ValueError, match=r"depth\[0\] = 5 is not a choice"):
        complexity.macs(
            space,
            SwinSubnet((16, 32), (5, 1), ((1,) * 5, (2,)), ((2.0,) * 5, (2.0,)), ((2,) * 5, (2,))),
        )
