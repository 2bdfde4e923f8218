from __future__ import annotations

import os
from collections.abc import Iterator

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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on loopback for the session (CI must have one: no skip)."""
    from search.testing import PostgresCluster, find_postgres_bin

    if find_postgres_bin() is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL server binaries not installed (make setup installs them)")
    with PostgresCluster() as cluster:
        yield cluster.url
