from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from supernet import SearchSpace, SubnetConfig, Supernet, complexity
from supernet.space import PRESETS_DIR

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
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
N_SUBNETS = 200


@pytest.mark.parametrize("preset", PRESETS)
def test_cost_model_matches_flop_counter(preset: str) -> None:
    """200 random subnets per preset, spread over the three poolings, both position embeddings
    and AutoFormer's relative positions.

    The AutoFormer presets run at full 224 px on the meta device (shapes only, no arithmetic),
    the CPU presets on real tensors.
    """
    base = SearchSpace.preset(preset)
    device = "meta" if base.img_size >= 224 else "cpu"
    rng = random.Random(preset)
    for v, (pool, pos_embed, rel_pos) in enumerate(VARIANTS):
        space = dataclasses.replace(base, pool=pool, pos_embed=pos_embed, rel_pos=rel_pos)
        with torch.device(device):
            net = Supernet(space)
        subnets = [space.sample(rng) for _ in range(N_SUBNETS // len(VARIANTS))]
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
