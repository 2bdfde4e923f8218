"""Fixtures for the search tests: tiny digits supernets, Hydra config composition, the CLI."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from search.runner import SearchResult, run_search
from search.testing import COMMAND_IMPORTS, ForkServer
from supernet import SearchSpace, Supernet, complexity, save_checkpoint
from supernet.data import build_data

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"

#: The digits images and classes, with fewer choices than the preset so that training is quick.
DIGITS_SMALL = SearchSpace(
    embed_dim=(16, 32),
    depth=(1, 2),
    num_heads=(1, 2),
    mlp_ratio=(1.0, 2.0),
    img_size=8,
    patch_size=2,
    in_chans=1,
    num_classes=10,
    head_dim=8,
    name="digits_small",
)


#: A FLOP budget halfway between the smallest and the largest subnet of DIGITS_SMALL.
HALF_FLOPS = (
    complexity.flops(DIGITS_SMALL, DIGITS_SMALL.smallest())
    + complexity.flops(DIGITS_SMALL, DIGITS_SMALL.largest())
) // 2


@pytest.fixture(scope="session")
def digits_space() -> SearchSpace:
    return DIGITS_SMALL


def _train(space: SearchSpace, steps: int, seed: int = 0) -> Supernet:
    torch.manual_seed(seed)
    net = Supernet(space)
    splits = build_data({"name": "digits"})
    loader = DataLoader(splits.train, batch_size=64, shuffle=True)
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    rng = random.Random(seed)
    batches = iter(())
    for _ in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        loss = torch.nn.functional.cross_entropy(net(x, space.sample(rng)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits supernet trained briefly with random subnets: accuracies differ across subnets."""
    path = tmp_path_factory.mktemp("trained") / "supernet.pt"
    net = _train(DIGITS_SMALL, steps=200)
    save_checkpoint(path, net, data={"name": "digits"}, train={}, epoch=1)
    return path


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, for tests where accuracy does not matter."""
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("random") / "supernet.pt"
    save_checkpoint(path, Supernet(DIGITS_SMALL), data={"name": "digits"}, train={}, epoch=0)
    return path


@pytest.fixture(scope="session")
def search_config() -> Callable[..., DictConfig]:
    """``search_config("supernet=...", "budget.flops=1M")``: the config `python -m search` gets."""

    def make(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(
                config_name="search",
                overrides=["search.progress=false", "search.plots_png=false", *overrides],
            )

    return make


@pytest.fixture(scope="session")
def cli() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run ``python -m <module> <args>`` from the repository root, as a user would: a process of
    its own, forked from a server that has imported torch and the package once
    (``VITNAS_TEST_FORK=0``: a fresh interpreter each time, as in tests/test_bad_inputs.py)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    server = None
    if os.environ.get("VITNAS_TEST_FORK", "1") != "0":
        server = ForkServer(COMMAND_IMPORTS, env=env)

    def run(module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", module, *args]
        if server is not None:
            return server.run(command, cwd=ROOT, timeout=timeout)
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    yield run
    if server is not None:
        server.close()


@pytest.fixture(scope="session")
def searched(
    trained_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path_factory: pytest.TempPathFactory,
) -> SearchResult:
    """One finished search (random sampler, a FLOP budget halfway up the space) shared by the
    tests that only read its outputs."""
    run_dir = tmp_path_factory.mktemp("search_run")
    cfg = search_config(
        f"supernet={trained_checkpoint}",
        f"budget.flops={HALF_FLOPS}",
        "search.n_trials=16",
        "search.sampler=random",
    )
    return run_search(cfg, run_dir, overrides={"budget.flops": HALF_FLOPS})


@pytest.fixture(scope="session")
def half_flops() -> int:
    return HALF_FLOPS
