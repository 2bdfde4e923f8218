from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from supernet import SearchSpace, SubnetConfig, Supernet, complexity
from supernet.space import PRESETS_DIR

#: The ViT presets (the Swin family's have their own tests: tests/supernet/swin/). The *_rpe
#: presets are their plain preset with AutoFormer's options, which every preset is counted with
#: below (VARIANTS); test_released_presets counts them as they are.
PRESETS = sorted(
    p.stem
    for p in PRESETS_DIR.glob("*.yaml")
    if not p.stem.endswith("_rpe") and SearchSpace.preset(p.stem).family == "vit"
)
RELEASED = sorted(p.stem for p in PRESETS_DIR.glob("*_rpe.yaml"))
#: (pool, position embedding, relative positions): every preset is counted in each variant.
VARIANTS = [
    ("cls", "learned", "none"),
    ("mean", "sinusoidal", "none"),
    ("mean", "learned", "none"),
    ("cls", "sinusoidal", "none"),
    ("cls_mean", "learned", "autoformer"),
    ("cls", "sinusoidal", "autoformer"),
    ("cls_mean", "sinusoidal", "none"),
]
#: Per preset, a multiple of the 7 variants. A 224 px subnet costs 0.3 s to count even on the
#: meta device: 21 of each here, ``bench/cost_model.py --n 200`` counts 200.
N_SUBNETS = 203
N_SUBNETS_224 = 21


@pytest.mark.parametrize("preset", PRESETS)
def test_cost_model_matches_flop_counter(preset: str) -> None:
    """203 random subnets per CPU preset, spread over the three poolings, both position
    embeddings and AutoFormer's relative positions (the released presets' own variant included).

    The AutoFormer presets run at full 224 px on the meta device (shapes only, no arithmetic)
    with 21 subnets each (a 224 px forward under FlopCounterMode costs 0.3 s even there;
    ``bench/cost_model.py --n 200`` counts 200 of them); the CPU presets on real tensors.
    """
    base = SearchSpace.preset(preset)
    device = "meta" if base.img_size >= 224 else "cpu"
    n_subnets = N_SUBNETS if device == "cpu" else N_SUBNETS_224
    rng = random.Random(preset)
    for v, (pool, pos_embed, rel_pos) in enumerate(VARIANTS):
        space = dataclasses.replace(base, pool=pool, pos_embed=pos_embed, rel_pos=rel_pos)
        with torch.device(device):
            net = Supernet(space)
        subnets = [space.sample(rng) for _ in range(n_subnets // len(VARIANTS))]
        if v == 0:
            subnets += [space.smallest(), space.largest()]
        for subnet in subnets:
            model = net.extract(subnet)
            n_params = sum(p.numel() for p in model.parameters())
            assert complexity.params(space, subnet) == n_params, subnet
            assert complexity.flops(space, subnet) == complexity.count_flops(model, space), subnet
            assert complexity.flops(space, subnet) == 2 * complexity.macs(space, subnet)


def test_breakdown_adds_up_and_matches_msa_formula() -> None:
    """With Q = D and M = 4D a block costs 4ND^2 + 2N^2D (MSA) + 8ND^2 (MLP) MACs."""
    space = SearchSpace(
        embed_dim=(64,),
        depth=(3,),
        num_heads=(4,),
        mlp_ratio=(4.0,),
        img_size=32,
        patch_size=4,
        in_chans=3,
        num_classes=7,
        head_dim=16,
    )
    subnet = space.largest()
    cost = complexity.breakdown(space, subnet)
    n, d, depth = space.num_tokens, 64, 3
    assert cost.attn_proj_macs + cost.attn_matmul_macs == depth * (4 * n * d * d + 2 * n * n * d)
    assert cost.mlp_macs == depth * 8 * n * d * d
    assert cost.patch_embed_macs == 64 * d * 3 * 16
    assert cost.head_macs == d * 7
    parts = cost.to_dict()
    assert parts["macs"] == sum(v for k, v in parts.items() if k.endswith("_macs"))
    assert parts["params"] == sum(v for k, v in parts.items() if k.endswith("_params"))
    assert parts["flops"] == 2 * parts["macs"]


@pytest.mark.slow
@pytest.mark.parametrize("preset", RELEASED)
def test_released_presets(preset: str) -> None:
    """AutoFormer's released configurations as they are (tiny's MLP ratio 3.0 included): the
    smallest, largest, released and 20 random subnets, at 224 px on the meta device."""
    space = SearchSpace.preset(preset)
    name = {"tiny": "t", "small": "s", "base": "b"}[preset.split("_")[1]]
    released = SubnetConfig.from_yaml(PRESETS_DIR.parent / "subnets" / f"autoformer_{name}.yaml")
    rng = random.Random(preset)
    with torch.device("meta"):
        net = Supernet(space)
    for subnet in [
        space.smallest(),
        space.largest(),
        released,
        *(space.sample(rng) for _ in range(20)),
    ]:
        model = net.extract(subnet)
        assert complexity.params(space, subnet) == sum(p.numel() for p in model.parameters())
        assert complexity.flops(space, subnet) == complexity.count_flops(model, space), subnet


#: AutoFormer's own counts for its released subnets, relative-position tables included: its
#: get_sampled_params_numel and a FlopCounterMode count of its forward, on random weights.
AUTOFORMER_COUNTS = {
    "t": ("autoformer_tiny_rpe", 5_867_944, 1_481_938_432),
    "s": ("autoformer_small_rpe", 22_891_432, 5_161_400_832),
    "b": ("autoformer_base_rpe", 53_691_688, 11_691_179_008),
}


@pytest.mark.parametrize("name", sorted(AUTOFORMER_COUNTS))
def test_released_subnets_cost_what_autoformer_counts(name: str) -> None:
    preset, n_params, n_macs = AUTOFORMER_COUNTS[name]
    space = SearchSpace.preset(preset)
    subnet = SubnetConfig.from_yaml(PRESETS_DIR.parent / "subnets" / f"autoformer_{name}.yaml")
    cost = complexity.breakdown(space, subnet)
    assert (cost.params, cost.macs) == (n_params, n_macs)
    # per block: four tables of 30 x 64, and q.rk plus p.rv at N^2 Q MACs each (N = 197)
    assert cost.rel_pos_params == subnet.depth * 4 * 30 * 64
    assert cost.rel_pos_macs == sum(2 * 197**2 * h * 64 for h in subnet.num_heads)
    plain = dataclasses.replace(space, rel_pos="none")
    assert complexity.params(plain, subnet) == n_params - cost.rel_pos_params
    assert complexity.macs(plain, subnet) == n_macs - cost.rel_pos_macs


def test_cost_grows_with_every_dimension(tiny_space: SearchSpace) -> None:
    base = SubnetConfig(8, 2, (1, 1), (1.0, 1.0))
    bigger = [
        SubnetConfig(12, 2, (1, 1), (1.0, 1.0)),
        SubnetConfig(8, 3, (1, 1, 1), (1.0, 1.0, 1.0)),
        SubnetConfig(8, 2, (1, 2), (1.0, 1.0)),
        SubnetConfig(8, 2, (1, 1), (1.0, 2.5)),
    ]
    for subnet in bigger:
        assert complexity.macs(tiny_space, subnet) > complexity.macs(tiny_space, base)
        assert complexity.params(tiny_space, subnet) > complexity.params(tiny_space, base)


def test_cost_model_rejects_subnets_outside_the_space(tiny_space: SearchSpace) -> None:
    with pytest.raises(ValueError, match="depth 5 is not a choice"):
        complexity.flops(tiny_space, SubnetConfig(8, 5, (1,) * 5, (1.0,) * 5))
