"""The epoch loop shared by supernet training and single-subnet fine-tune / scratch training.

What differs between the two is a :class:`Task`: which forward/backward passes a step makes,
what validation reports, and how the model is checkpointed. The loop owns the rest: the sharded,
seeded data order, augmentation, AdamW with warmup + cosine, autocast, gradient averaging across
ranks, clipping, progress within an epoch (``train.progress``: a bar on a terminal, sparse log
lines elsewhere), a checkpoint and a metrics row after every epoch, and resume.

Resume is exact on the CPU: the data order is a function of (seed, epoch), and every generator the
loop or the task draws from is saved at each epoch's end and restored on resume, so a run killed at
any moment and resumed from its last checkpoint ends with the same weights as one never stopped.

A diverged run stops with a :class:`TrainingError` naming the epoch, the step and the subnet whose
loss became NaN or infinite, before the optimizer takes that step; a checkpoint is never written
with non-finite weights, so the last good one stays as it was.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from ..common.atomic import atomic_write_text, remove_stale_temps
from ..common.console import Progress
from ..common.errors import OutputError, UserError
from ..data import BatchAugment, DataSplits
from . import rng
from .config import ConfigError, TrainConfig
from .distributed import DistEnv
from .optim import build_optimizer, lazy_step, warmup_cosine

__all__ = ["Amp", "Hooks", "Task", "TrainingError", "fit", "write_csv"]

log = logging.getLogger(__name__)


class TrainingError(UserError):
    """Training cannot go on (the loss diverged): the message says what to change."""


class _Diverged(Exception):
    """A non-finite loss or gradient in one step (:func:`fit` turns it into a TrainingError)."""

    def __init__(self, what: str, subnets: list[str]) -> None:
        super().__init__(what)
        self.what = what
        self.subnets = subnets
        self.epoch = self.step = 0


@dataclass
class Amp:
    """Mixed precision: autocast dtype (``None`` for fp32) and the fp16 loss scaler."""

    device_type: str
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler

    @classmethod
    def build(cls, precision: str, device: torch.device) -> Amp:
        if precision == "auto":
            if device.type == "cuda":
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            else:
                precision = "fp32"
        dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(device.type, dtype, scaler)

    def autocast(self) -> AbstractContextManager[Any]:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()


class Task(Protocol):
    """The part of training that depends on what is trained."""

    model: nn.Module

    def train_step(self, x: torch.Tensor, y: torch.Tensor, amp: Amp) -> torch.Tensor:
        """Forward and backward (gradients accumulate); return the detached loss to report."""
        ...

    def evaluate(self) -> dict[str, float]:
        """Validation metrics (run on rank 0 only), e.g. ``{"val_acc": 0.93}``."""
        ...

    def state(self) -> dict[str, Any]:
        """Extra state to checkpoint (a subnet sampler's generator, say)."""
        ...

    def load_state(self, state: Mapping[str, Any]) -> None: ...

    def step_losses(self) -> dict[str, torch.Tensor]:
        """The detached loss of each model (subnet) the last step trained, by its name."""
        ...

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        """Write the model and ``extra`` to ``path`` atomically."""
        ...


@dataclass
class Hooks:
    """Callbacks for callers that watch (benchmarks) or interrupt (tests) a run."""

    on_step: Callable[[int, int, float], None] | None = None  # (epoch, step, loss), 0-based
    on_epoch: Callable[[dict[str, Any]], None] | None = None  # after the epoch's checkpoint


@dataclass
class FitResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None  # weights' SHA-256 checked equal on every rank (distributed runs)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV atomically (columns in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    text = buffer.getvalue()
    atomic_write_text(path, text)


def _loader(
    splits: DataSplits, config: TrainConfig, env: DistEnv, seed: int
) -> tuple[DataLoader[Any], DistributedSampler[Any]]:
    """Training batches: each rank reads its shard of a (seed, epoch)-shuffled order."""
    if config.batch_size % env.world_size:
        raise ConfigError(
            f"train.batch_size ({config.batch_size}) is the global batch and must divide evenly "
            f"over {env.world_size} processes"
        )
    per_rank = config.batch_size // env.world_size
    sampler: DistributedSampler[Any] = DistributedSampler(
        splits.train, num_replicas=env.world_size, rank=env.rank, shuffle=True, seed=seed
    )
    if len(sampler) < per_rank:
        where = f" over {env.world_size} processes" if env.distributed else ""
        raise ConfigError(
            f"train.batch_size ({config.batch_size}) is larger than the training set "
            f"({len(sampler) * env.world_size} images{where}); lower train.batch_size or raise "
            "data.train_subset"
        )
    loader = DataLoader(
        splits.train,
        batch_size=per_rank,
        sampler=sampler,
        drop_last=True,  # equal steps on every rank, no tiny last batch
        num_workers=config.num_workers,
        pin_memory=env.device.type == "cuda",
        persistent_workers=config.num_workers > 0,
    )
    return loader, sampler


class _Trainer:
    """The state of one :func:`fit` call: data order, optimizer, schedule, scaler, generators."""

    def __init__(
        self, task: Task, config: TrainConfig, env: DistEnv, splits: DataSplits, seed: int
    ) -> None:
        self.task, self.config, self.env, self.seed = task, config, env, seed
        self.augment = splits.augment
        self.generator: torch.Generator | None = None
        if isinstance(self.augment, BatchAugment):
            # Each rank augments its own shard differently; the generator is checkpointed.
            self.generator = torch.Generator().manual_seed(seed * 1_000_003 + env.rank)
            self.augment.generator = self.generator
        self.loader, self.sampler = _loader(splits, config, env, seed)
        self.steps = len(self.loader)
        self.optimizer = build_optimizer(task.model, config)
        self.scheduler = warmup_cosine(self.optimizer, config, self.steps)
        self.amp = Amp.build(config.precision, env.device)
        self.params = [p for p in task.model.parameters() if p.requires_grad]

    def load(self, resume: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: optimizer, schedule, scaler, task and generator states."""
        self.optimizer.load_state_dict(resume["optimizer"])
        self.scheduler.load_state_dict(resume["scheduler"])
        if self.amp.scaler.is_enabled() and resume.get("scaler"):
            self.amp.scaler.load_state_dict(resume["scaler"])
        self.task.load_state(resume["task"])
        states = resume["rng"]
        if len(states) == self.env.world_size:
            rng.restore(states[self.env.rank], self.generator)
        else:
            log.warning(
                "the checkpoint was written by %d process(es), this run has %d: generator "
                "states are re-seeded, so the run will not replay exactly",
                len(states),
                self.env.world_size,
            )
            torch.manual_seed(self.seed + int(resume["epoch"]) * 7919 + self.env.rank)

    def _diverged(self, what: str) -> _Diverged:
        losses = self.task.step_losses()
        bad = [name for name, value in losses.items() if not torch.isfinite(value).all()]
        return _Diverged(what, bad or list(losses))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimizer step; returns the loss the task reports.

        Raises :class:`_Diverged`, before the optimizer moves, when the loss or the gradients
        are not finite. The gradient check decides the same on every rank (the gradients are
        averaged first); with fp16's loss scaler, infinite gradients only skip the step.
        """
        env, amp, optimizer = self.env, self.amp, self.optimizer
        x = self.augment(x.to(env.device, non_blocking=True))
        y = y.to(env.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        loss = float(self.task.train_step(x, y, amp))
        env.average_gradients(self.task.model)
        amp.scaler.unscale_(optimizer)
        if self.config.grad_clip is not None:
            norm = nn.utils.clip_grad_norm_(self.params, self.config.grad_clip)
        else:
            norm = nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None])
        if not env.distributed and not math.isfinite(loss):
            # (Distributed runs catch it from the gradients, or in the epoch's mean loss.)
            raise self._diverged(f"the training loss became {loss}")
        if not amp.scaler.is_enabled() and not math.isfinite(float(norm)):
            raise self._diverged(f"the gradients became {float(norm)}")
        if self.config.lazy_updates:
            lazy_step(optimizer, lambda: amp.scaler.step(optimizer))
        else:
            amp.scaler.step(optimizer)
        amp.scaler.update()
        self.scheduler.step()
        return loss

    def epoch(self, epoch: int, hooks: Hooks) -> tuple[float, int, float]:
        """Train one epoch; returns (mean loss over ranks, images over ranks, seconds)."""
        self.sampler.set_epoch(epoch)
        self.task.model.train()
        start = time.perf_counter()
        loss_sum, images = 0.0, 0
        bar = Progress(
            self.config.progress,
            total=self.steps,
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            unit="batch",
            logger=log,
            enabled=self.env.is_main,
        )
        with bar:
            for step, (x, y) in enumerate(self.loader):
                try:
                    loss = self.step(x, y)
                except _Diverged as diverged:
                    diverged.epoch, diverged.step = epoch + 1, step + 1
                    raise
                loss_sum += loss
                images += len(y) * self.env.world_size
                rate = images / max(time.perf_counter() - start, 1e-9)
                bar.update(1, loss=f"{loss:.3f}", img_s=f"{rate:.0f}")
                if hooks.on_step is not None:
                    hooks.on_step(epoch, step, loss)
        mean = self.env.mean(loss_sum / self.steps)
        if not math.isfinite(mean):  # a distributed run whose loss diverged on some rank
            diverged = _Diverged(f"the mean training loss became {mean}", [])
            diverged.epoch, diverged.step = epoch + 1, self.steps
            raise diverged
        return mean, images, time.perf_counter() - start

    def weights_finite(self) -> bool:
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in self.task.model.parameters())

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue, gathered from every rank (a collective)."""
        return {
            "seed": self.seed,
            "world_size": self.env.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.amp.scaler.state_dict(),
            "rng": self.env.gather_objects(rng.capture(self.generator)),
            "task": self.task.state(),
        }


def fit(
    task: Task,
    *,
    config: TrainConfig,
    env: DistEnv,
    splits: DataSplits,
    seed: int,
    run_dir: Path,
    checkpoint_name: str,
    resume: Mapping[str, Any] | None = None,
    hooks: Hooks | None = None,
    extra: Mapping[str, Any] | None = None,
) -> FitResult:
    """Train ``task.model`` for ``config.epochs`` epochs (from ``resume``'s epoch if given).

    Only rank 0 writes: after every epoch ``<run_dir>/<checkpoint_name>`` (the task's model,
    ``extra``, the epoch, optimizer, scheduler, scaler, every rank's generator states, the
    task's state and the metrics so far) and ``<run_dir>/metrics.csv``.
    """
    hooks = hooks or Hooks()
    result = FitResult()
    if config.epochs == 0:
        return result
    checkpoint = run_dir / checkpoint_name
    if env.is_main:  # what writes killed half-way left behind
        for path in (checkpoint, run_dir / "metrics.csv"):
            for stale in remove_stale_temps(path):
                log.info("removed %s, left by a run killed while writing %s", stale, path.name)
    trainer = _Trainer(task, config, env, splits, seed)
    start = 0
    if resume is not None:
        trainer.load(resume)
        result.rows = [dict(r) for r in resume["metrics"]]
        start = int(resume["epoch"])
        if start >= config.epochs:
            _adopt(task, trainer, checkpoint, resume, extra, result.rows, env)
    wall = float(result.rows[-1]["wall_s"]) if result.rows else 0.0
    saved = start
    for epoch in range(start, config.epochs):
        t0 = time.perf_counter()
        try:
            train_loss, images, train_s = trainer.epoch(epoch, hooks)
        except _Diverged as diverged:
            raise TrainingError(
                _diverged_message(diverged, config, trainer.amp, checkpoint, saved)
            ) from None
        if not trainer.weights_finite():  # the same on every rank: the weights are in sync
            diverged = _Diverged("the weights became non-finite", [])
            diverged.epoch, diverged.step = epoch + 1, trainer.steps
            raise TrainingError(_diverged_message(diverged, config, trainer.amp, checkpoint, saved))
        state = trainer.state()
        if env.distributed:
            result.digest = env.check_in_sync(task.model)
        if env.is_main:
            metrics = task.evaluate()
            epoch_s = time.perf_counter() - t0
            wall += epoch_s
            row = {
                "epoch": epoch + 1,
                "train_loss": round(train_loss, 6),
                "lr": trainer.scheduler.get_last_lr()[0],
                "images_per_s": round(images / train_s, 1),
                **{k: round(v, 6) for k, v in metrics.items()},
                "epoch_s": round(epoch_s, 3),
                "wall_s": round(wall, 3),
            }
            result.rows.append(row)
            try:
                task.save(
                    checkpoint,
                    {**(extra or {}), "epoch": epoch + 1, **state, "metrics": result.rows},
                )
            except OutputError as exc:
                raise _resumable(exc, saved) from exc
            try:
                write_csv(run_dir / "metrics.csv", result.rows)
            except OutputError as exc:
                raise _resumable(exc, epoch + 1) from exc
            log.info(
                "epoch %d/%d  loss %.4f  %s  lr %.2e  %.0f img/s  %.1fs",
                epoch + 1,
                config.epochs,
                train_loss,
                "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
                row["lr"],
                row["images_per_s"],
                epoch_s,
            )
            if hooks.on_epoch is not None:
                hooks.on_epoch(row)
        saved = epoch + 1
        env.barrier()
    return result


def _adopt(
    task: Task,
    trainer: _Trainer,
    checkpoint: Path,
    resume: Mapping[str, Any],
    extra: Mapping[str, Any] | None,
    rows: list[dict[str, Any]],
    env: DistEnv,
) -> None:
    """A run resumed from a finished checkpoint of another directory has nothing to train, but
    its own directory still gets that checkpoint and its metrics (the run said it saved them)."""
    state = trainer.state()  # a collective: every rank takes part
    if env.is_main and not checkpoint.exists():
        try:
            task.save(
                checkpoint,
                {**(extra or {}), "epoch": int(resume["epoch"]), **state, "metrics": rows},
            )
            write_csv(checkpoint.parent / "metrics.csv", rows)
        except OutputError as exc:
            raise _resumable(exc, 0) from exc


def _resumable(exc: OutputError, saved: int) -> OutputError:
    """A checkpoint or metrics write that failed, with how to continue once it can succeed."""
    then = (
        f"then run the same command with resume=auto: it continues from epoch {saved}"
        if saved
        else "then run the same command again (no epoch was saved)"
    )
    return OutputError(f"{exc}; {then}")


def _diverged_message(
    diverged: _Diverged, config: TrainConfig, amp: Amp, checkpoint: Path, saved: int
) -> str:
    """What diverged where, what was kept, and what to change."""
    where = f"at epoch {diverged.epoch}, step {diverged.step}"
    if len(diverged.subnets) == 1:
        where += f" (subnet {diverged.subnets[0]})"
    elif diverged.subnets:
        where += f" (subnets {', '.join(diverged.subnets)})"
    kept = (
        f"{checkpoint} still holds epoch {saved}, the last good one"
        if saved
        else "no checkpoint was written"
    )
    fixes = [f"a lower train.lr (now {config.lr:g})"]
    if config.grad_clip is None:
        fixes.append("gradient clipping (train.grad_clip=1.0)")
    else:
        fixes.append(f"a lower train.grad_clip (now {config.grad_clip:g})")
    if amp.dtype is not None:
        fixes.append("train.precision=fp32")
    return (
        f"training diverged: {diverged.what} {where}; stopped without saving it: {kept}. "
        f"Start a new run (another hydra.run.dir) with {', '.join(fixes[:-1])} or {fixes[-1]}"
    )
