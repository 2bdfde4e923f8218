"""Data-parallel training: ``torchrun --nproc_per_node=2 -m supernet.train`` with gloo on CPU."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


def test_a_clean_run_leaves_the_group_after_a_barrier_and_a_failed_one_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaving the group while another rank still writes its checkpoint made gloo abort that
    rank at exit: every rank of a clean run meets at a barrier first. After an error no rank
    waits there (the others may never come)."""
    import torch.distributed as dist

    calls: list[str] = []
    monkeypatch.setattr(dist, "barrier", lambda *a, **k: calls.append("barrier"))
    real_destroy = dist.destroy_process_group
    monkeypatch.setattr(
        dist, "destroy_process_group", lambda *a, **k: (calls.append("destroy"), real_destroy())
    )
    for fails in (False, True):
        calls.clear()
        store = f"file://{tmp_path / f'store{fails}'}"
        dist.init_process_group("gloo", init_method=store, rank=0, world_size=1)
        env = DistEnv(rank=0, world_size=2, owns_group=True)  # as torchrun's ranks see it
        with pytest.raises(RuntimeError) if fails else contextlib.nullcontext(), env:
            if fails:
                raise RuntimeError("a rank failed")
        assert calls == (["destroy"] if fails else ["barrier", "destroy"])
        assert not dist.is_initialized()
