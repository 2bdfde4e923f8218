"""A diverged run stops with one clear message and keeps its last good checkpoint untouched."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from supernet.checkpoint import FORMAT as SUPERNET_FORMAT
from supernet.checkpoint import load_checkpoint
from supernet.train import Hooks, TrainingError, train_subnet, train_supernet
from supernet.train.subnet_training import FORMAT as SUBNET_FORMAT
from supernet.train.subnet_training import SubnetTask
from supernet.train.supernet_training import SupernetTask

from .conftest import Factory

STEPS = 4  # tiny_run: 128 images, batch 32


def _poison_batch(monkeypatch: pytest.MonkeyPatch, task: type, at_call: int) -> None:
    """Feed one NaN image to the task's ``at_call``-th training step (0-based)."""
    original: Callable[..., torch.Tensor] = task.train_step  # type: ignore[attr-defined]
    calls = {"n": 0}

    def train_step(self: Any, x: torch.Tensor, y: torch.Tensor, amp: Any) -> torch.Tensor:
        if calls["n"] == at_call:
            x = x.clone()
            x[0] = float("nan")
        calls["n"] += 1
        return original(self, x, y, amp)

    monkeypatch.setattr(task, "train_step", train_step)


def _keep_epoch_1(path: Path) -> tuple[Hooks, dict[str, bytes]]:
    seen: dict[str, bytes] = {}

    def on_epoch(row: dict[str, Any]) -> None:
        if row["epoch"] == 1:
            seen["bytes"] = path.read_bytes()

    return Hooks(on_epoch=on_epoch), seen


def _check_kept(run_dir: Path, name: str, epoch_1: bytes) -> None:
    checkpoint = run_dir / name
    assert checkpoint.read_bytes() == epoch_1  # untouched since the last good epoch
    fmt = SUBNET_FORMAT if name == "checkpoint.pt" else SUPERNET_FORMAT
    payload = load_checkpoint(checkpoint, expected_format=fmt)
    assert payload["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in payload["model"].values())
    with (run_dir / "metrics.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_nan_loss_names_epoch_step_and_subnet(
    tiny_run: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_run(strategy="uniform", epochs=3, grad_clip=None)
    run_dir = Path(config["run_dir"])
    hooks, seen = _keep_epoch_1(run_dir / "supernet.pt")
    _poison_batch(monkeypatch, SupernetTask, at_call=STEPS + 1)  # epoch 2, step 2
    with pytest.raises(TrainingError) as info:
        train_supernet(config, hooks)
    message = str(info.value)
    assert message.startswith("training diverged: the training loss became nan at epoch 2, step 2")
    assert "(subnet D" in message  # uniform sampling: the one subnet of that step
    assert f"{run_dir / 'supernet.pt'} still holds epoch 1, the last good one" in message
    assert "a lower train.lr (now 0.003)" in message
    assert "gradient clipping (train.grad_clip=1.0)" in message
    assert "\n" not in message
    _check_kept(run_dir, "supernet.pt", seen["bytes"])


def test_nan_in_the_first_step_writes_nothing(
    tiny_run: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_run(precision="bf16", epochs=2)  # sandwich: four subnets per step
    _poison_batch(monkeypatch, SupernetTask, at_call=0)
    with pytest.raises(TrainingError) as info:
        train_supernet(config)
    message = str(info.value)
    assert "at epoch 1, step 1 (subnets D64-L4-" in message  # the largest comes first
    assert "no checkpoint was written" in message
    assert "a lower train.grad_clip (now 5)" in message and "train.precision=fp32" in message
    run_dir = Path(config["run_dir"])
    assert not (run_dir / "supernet.pt").exists() and not (run_dir / "metrics.csv").exists()


def test_weights_that_became_infinite_are_never_saved(
    tiny_run: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finite loss, then weights gone bad in the epoch's last step: no checkpoint of them."""
    tasks: list[SupernetTask] = []
    original_init = SupernetTask.__init__

    def init(self: SupernetTask, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        tasks.append(self)

    monkeypatch.setattr(SupernetTask, "__init__", init)
    config = tiny_run(epochs=3)
    run_dir = Path(config["run_dir"])
    keep, seen = _keep_epoch_1(run_dir / "supernet.pt")

    def on_step(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == (1, STEPS - 1):  # after the optimizer moved in epoch 2's last step
            with torch.no_grad():
                next(tasks[0].model.parameters()).view(-1)[0] = float("inf")

    with pytest.raises(TrainingError, match="the weights became non-finite at epoch 2, step 4"):
        train_supernet(config, Hooks(on_step=on_step, on_epoch=keep.on_epoch))
    _check_kept(run_dir, "supernet.pt", seen["bytes"])


def test_subnet_training_stops_too(tiny_run: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tiny_run("scratch", epochs=2)
    config.update(mode="scratch", subnet="smallest")
    run_dir = Path(config["run_dir"])
    hooks, seen = _keep_epoch_1(run_dir / "checkpoint.pt")
    _poison_batch(monkeypatch, SubnetTask, at_call=STEPS + 2)  # epoch 2, step 3
    with pytest.raises(TrainingError, match=r"at epoch 2, step 3 \(subnet D32-L2-H\[1/1\]"):
        train_subnet(config, hooks)
    _check_kept(run_dir, "checkpoint.pt", seen["bytes"])
    assert not (run_dir / "result.json").exists() and not (run_dir / "subnet").exists()
