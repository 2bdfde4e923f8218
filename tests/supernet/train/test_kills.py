"""``kill -9`` of ``python -m supernet.train`` in the middle of a checkpoint write and in the
middle of an epoch: the checkpoint stays readable, and ``resume=auto`` ends with the weights of a
run never stopped. (``bench/faults.py`` does this at more, random, moments.)"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from supernet.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[3]
# Augmentation, stochastic depth and sandwich sampling all draw random numbers.
RECIPE = ["data.train_subset=256", "train.epochs=4", "train.drop_path=0.1", "resume=auto"]


def _start(run_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "supernet.train", f"hydra.run.dir={run_dir}", *RECIPE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _temps(run_dir: Path) -> list[Path]:
    return list(run_dir.glob(".supernet.pt.*.tmp")) if run_dir.is_dir() else []


def _epochs_done(run_dir: Path) -> int:
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        return 0
    with metrics.open() as f:
        return len(list(csv.DictReader(f)))


def _kill_mid_write(run_dir: Path) -> bool:
    """Start the run, SIGKILL it as soon as a checkpoint's temporary file appears; True if the
    kill landed before the write finished (the temporary file is still there)."""
    process = _start(run_dir)
    try:
        while process.poll() is None and not _temps(run_dir):
            time.sleep(0.0005)
        assert process.poll() is None, process.communicate()[1][-2000:]
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    return bool(_temps(run_dir))


def _kill_mid_epoch(run_dir: Path) -> int:
    """Start the run, SIGKILL it in the middle of the epoch after the next checkpoint."""
    before = _epochs_done(run_dir)
    process = _start(run_dir)
    try:
        while process.poll() is None and _epochs_done(run_dir) <= before:
            time.sleep(0.005)
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.1)  # into the next epoch (an epoch takes longer on any machine)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    return _epochs_done(run_dir)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "supernet.pt")["model"]


@pytest.mark.slow
def test_killed_mid_write_and_mid_epoch_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    whole = subprocess.run(
        [sys.executable, "-m", "supernet.train", f"hydra.run.dir={tmp_path / 'whole'}", *RECIPE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert whole.returncode == 0, whole.stderr[-2000:]

    run = tmp_path / "killed"
    mid_write = any(_kill_mid_write(run) for _ in range(3))
    assert mid_write, "the kill never landed inside a checkpoint write"
    if (run / "supernet.pt").exists():  # the epoch before the torn write, whole
        assert load_checkpoint(run / "supernet.pt")["epoch"] >= 1
    stopped_at = _kill_mid_epoch(run)
    assert 1 <= stopped_at < 4
    assert load_checkpoint(run / "supernet.pt")["epoch"] == stopped_at  # readable, not torn

    last = subprocess.run(
        [sys.executable, "-m", "supernet.train", f"hydra.run.dir={run}", *RECIPE],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert last.returncode == 0, last.stderr[-2000:]
    assert f"epoch(s) from epoch {stopped_at}," in (run / "train.log").read_text()
    assert not _temps(run)  # what the killed writes left was cleared
    a, b = _weights(tmp_path / "whole"), _weights(run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
