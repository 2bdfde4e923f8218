from __future__ import annotations

import pytest
import torch

from supernet import SearchSpace


@pytest.fixture
def tiny_space() -> SearchSpace:
    """A space small enough for exhaustive checks: 2 widths, depth 1-3, 3 head counts, 2 ratios."""
    return SearchSpace(
        embed_dim=(8, 12),
        depth=(1, 2, 3),
        num_heads=(1, 2, 3),
        mlp_ratio=(1.0, 2.5),
        img_size=8,
        patch_size=4,
        in_chans=2,
        num_classes=5,
        head_dim=4,
    )


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
