from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from supernet import SearchSpace

#: The files that take minutes (measured with --durations=0 on 2 cores), longest first. `make
#: test` hands whole files to its two workers in collection order (pytest -n 2 --dist loadfile):
#: started first, they no longer leave one worker running the longest file alone at the end.
SLOWEST_FILES = (
    "tests/search/test_kills.py",
    "tests/test_bad_inputs.py",
    "tests/supernet/swin/test_swin_complexity.py",
    "tests/supernet/test_complexity.py",
    "tests/test_full_disk.py",
    "tests/test_swin_pipeline.py",
    "tests/search/test_cli.py",
    "tests/search/test_concurrency.py",
    "tests/search/test_runner.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slowest files first, in :data:`SLOWEST_FILES` order; the rest as collected."""
    root = Path(str(config.rootpath))

    def rank(item: pytest.Item) -> int:
        path = Path(str(item.path)).relative_to(root).as_posix()
        return SLOWEST_FILES.index(path) if path in SLOWEST_FILES else len(SLOWEST_FILES)

    items.sort(key=rank)  # stable: each file's tests keep their order


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


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``small_disk("300k")``: a real tmpfs of that size (a real full disk: ENOSPC from the
    kernel, whatever message each library makes of it), unmounted afterwards. Mounting needs
    root (or CAP_SYS_ADMIN): the test is skipped, saying so, where it is not permitted."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"disk{len(mounted)}"
        where.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
