from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from search.latency.design import designed_sample
from supernet import complexity
from supernet.common.errors import UserError
from supernet.swin.latency import FEATURES, latency_features
from supernet.swin.space import SwinSpace, SwinSubnet


def test_features_are_the_cost_terms_per_batch(padded_swin: SwinSpace) -> None:
    space = padded_swin
    subnet = space.validate(
        SwinSubnet(
            (8, 20, 24),
            (2, 3, 1),
            ((2, 1), (2, 3, 2), (2,)),
            ((2.5, 1.0), (1.0, 2.5, 1.0), (2.5,)),
            ((3, 8), (4, 3, 3), (2,)),
        )
    )
    one, four = latency_features(space, subnet, 1), latency_features(space, subnet, 4)
    assert list(one) == list(FEATURES)
    cost = complexity.breakdown(space, subnet)
    assert one["attn_matmul_macs"] == cost.attn_matmul_macs
    assert one["embed_macs"] == cost.patch_embed_macs + cost.head_macs
    assert one["blocks"] == 6 and one["intercept"] == 1.0
    # stage 0: block 1 has the whole-map window (no shift); stage 1: block 1 (3 on 4x4) shifts
    assert one["shifted_blocks"] == 1
    # padded: stage 0 block 0 (8 -> 9), stage 1 blocks 1 and 2 (4 -> 6)
    assert one["pad_elems"] == 81 * 8 + 2 * 36 * 20
    assert one["shift_elems"] == 36 * 20
    assert one["block_elems"] == 2 * 64 * 8 + 3 * 16 * 20 + 4 * 24
    assert one["merge_elems"] == 64 * 8 + 16 * 20
    assert one["bias_elems"] == 2 * 3**4 + 1 * 8**4 + 2 * 4**4 + 3 * 3**4 + 2 * 3**4 + 2 * 2**4
    for name, value in one.items():
        per_batch = name not in ("intercept", "blocks", "shifted_blocks", "bias_elems")
        assert four[name] == (4 * value if per_batch else value), name


def test_no_shift_features_without_shifting() -> None:
    space = dataclasses.replace(SwinSpace.preset("swin_digits"), shift="none")
    rng = random.Random(0)
    for _ in range(20):
        features = latency_features(space, space.sample(rng), 8)
        assert features["shifted_blocks"] == features["shift_elems"] == 0
        assert features["pad_elems"] == 0  # every window divides its map


@pytest.mark.parametrize("preset", ["swin_digits", "swin_fashion_mnist", "swin_tiny"])
def test_designed_sample_spans_the_cost_range(preset: str) -> None:
    space = SwinSpace.preset(preset)
    sample = designed_sample(space, 40, random.Random(0))
    assert len(sample) == len(set(sample)) == 40
    assert sample[0] == space.smallest() and sample[1] == space.largest()
    for subnet in sample:
        space.validate(subnet)
    macs = np.array([complexity.macs(space, s) for s in sample])
    rng = random.Random(1)
    uniform = np.array([complexity.macs(space, space.sample(rng)) for _ in range(40)])
    assert macs.std() > uniform.std()  # spread wider than a uniform draw
    matrix = np.array([[latency_features(space, s, 1)[f] for f in FEATURES] for s in sample])
    varying = matrix[:, matrix.std(axis=0) > 0]
    assert np.linalg.matrix_rank(varying) == varying.shape[1]  # terms vary independently


def test_designed_sample_limits(tiny_swin: SwinSpace) -> None:
    assert len(designed_sample(tiny_swin, 24, random.Random(0))) == 24  # the whole space
    with pytest.raises(UserError, match="this space holds only 24"):
        designed_sample(tiny_swin, 25, random.Random(0))
    with pytest.raises(UserError, match="at least 2 subnets"):
        designed_sample(tiny_swin, 1, random.Random(0))
