"""Data-parallel training: ``torchrun --nproc_per_node=2 -m supernet.train`` with gloo on CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from supernet.checkpoint import load_checkpoint
from supernet.data import build_data
from supernet.train import TrainConfig, train_supernet
from supernet.train.distributed import DistEnv, state_digest
from supernet.train.loop import _loader

ROOT = Path(__file__).resolve().parents[3]
ARGS = [
    "data.train_subset=128",
    "data.augment.crop_padding=0",
    "train.epochs=2",
    "train.batch_size=32",
]


def test_ranks_read_disjoint_shards_of_the_same_global_batches() -> None:
    splits = build_data({"name": "digits", "train_subset": 128})
    config = TrainConfig(batch_size=32)
    single, sampler = _loader(splits, config, DistEnv(), seed=0)
    sampler.set_epoch(1)
    shards = []
    for rank in (0, 1):
        loader, s = _loader(splits, config, DistEnv(rank=rank, world_size=2), seed=0)
        s.set_epoch(1)
        assert loader.batch_size == 16
        shards.append([list(batch) for batch in loader.batch_sampler])  # type: ignore[union-attr]
    for whole, a, b in zip(single.batch_sampler, *shards, strict=True):  # type: ignore[arg-type]
        assert not set(a) & set(b)
        assert set(a) | set(b) == set(whole)


def test_two_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "supernet.train",
        *ARGS,
    ]
    out = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    # Only rank 0 wrote: one run directory (the other rank's Hydra directory, if its clock gave
    # it another name, is gone), Hydra's files once, and one log without a second rank's lines.
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    (run,) = (tmp_path / "runs" / "supernet").iterdir()
    assert {p.name for p in run.iterdir()} == {".hydra", "metrics.csv", "supernet.pt", "train.log"}
    log = (run / "train.log").read_text()
    assert log.count("training a digits supernet") == 1 and "2 process(es)" in log
    payload = load_checkpoint(run / "supernet.pt")
    assert payload["world_size"] == 2 and len(payload["rng"]) == 2
    assert not torch.equal(payload["rng"][0]["torch"], payload["rng"][1]["torch"])
    # Both ranks ended with the same weights: the run checks it and logs the digest, which is
    # the digest of the saved weights.
    digest = re.search(r"weights sha256 ([0-9a-f]{64}) identical on 2 ranks", log)
    assert digest is not None, log
    assert digest.group(1) == state_digest(payload["model"].values())
    # Two ranks with half batches compute the same averaged gradients as one process with the
    # whole batch: the weights agree with a single-process run up to float rounding.
    single = train_supernet(
        {
            "run_dir": str(tmp_path / "single"),
            "space": "digits",
            "threads": 1,
            "data": {"name": "digits", "train_subset": 128},
            "train": {"epochs": 2, "batch_size": 32},
        }
    )
    reference = load_checkpoint(single.checkpoint)["model"]
    for key, value in payload["model"].items():
        torch.testing.assert_close(value, reference[key], atol=2e-5, rtol=1e-4, msg=key)
