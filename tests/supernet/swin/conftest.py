from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from supernet.swin.space import SwinSpace


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These tests run many tiny forwards: a second thread only adds contention (about 8x
    slower FlopCounterMode checks on the 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_swin() -> SwinSpace:
    """Small enough to enumerate: 24 subnets once the windows collapse (4x4 then 2x2 maps)."""
    return SwinSpace(
        embed_dim=[[4, 8], [8]],
        depth=[[1, 2], [1]],
        num_heads=[[1], [1, 2]],
        mlp_ratio=[1.0],
        window_size=[[2, 4, 8], [2, 4]],
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=3,
        head_dim=4,
    )


@pytest.fixture
def padded_swin() -> SwinSpace:
    """Three stages (8², 4², 2² maps) whose windows 3 and 5 do not divide their maps: padded
    windows (8 -> 9 or 10, 4 -> 6), shifted or not, beside unpadded whole-map windows."""
    return SwinSpace(
        embed_dim=[[8, 12], [16, 20], [24, 32]],
        depth=[[1, 2], [1, 2, 3], [1, 2]],
        num_heads=[[1, 2], [2, 3], [2, 4]],
        mlp_ratio=[1.0, 2.5],
        window_size=[[3, 5, 8], [3, 4], [2]],
        img_size=16,
        patch_size=2,
        in_chans=2,
        num_classes=5,
        head_dim=4,
        name="padded",
    )
