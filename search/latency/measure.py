"""Measuring the forward latency of a model on a device: warm-up, median of repeats, conditions.

Every timed forward runs under ``torch.inference_mode()`` with the model in eval mode; on CUDA the
device is synchronised before the clock starts and before it stops, so a sample is the full
latency of one batch, kernel launches included. The conditions (batch size, threads, device,
clock, torch version, time) travel with the result.

Two clocks are read around every forward: ``wall`` (``time.perf_counter``, the latency) and
``cpu`` (``time.thread_time``, the CPU time of the calling thread). With one thread on a CPU the
forward runs entirely on the calling thread, so ``cpu`` is the latency minus the time the thread
spent descheduled: on a machine shared with other jobs it estimates the latency on an idle
machine far more steadily than the wall clock does. It means nothing with more threads or on
CUDA, where it is refused.

By default the C allocator is made steady first (:func:`~.allocator.steady_allocator`), so that a
forward does not page-fault in some process states and not in others.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import nn

from supernet import Space
from supernet.common.console import Progress
from supernet.common.errors import quoted

from .allocator import steady_allocator as _steady_allocator
from .device import device_description, parse_device, torch_threads
from .errors import LatencyError

log = logging.getLogger(__name__)

__all__ = [
    "CLOCKS",
    "Clock",
    "LatencyMeasurement",
    "Timings",
    "check_clock",
    "check_settings",
    "example_input",
    "interleaved_samples",
    "measure_latency",
    "timed_forwards",
]

K = TypeVar("K", bound=Hashable)
Clock = Literal["wall", "cpu"]
CLOCKS: tuple[Clock, ...] = ("wall", "cpu")


@dataclass(frozen=True)
class LatencyMeasurement:
    """The latency of one model for one batch, and the conditions it was measured under."""

    median_ms: float
    samples_ms: tuple[float, ...]
    batch_size: int
    input_shape: tuple[int, ...]
    threads: int
    device: str
    device_name: str
    torch_version: str
    timestamp: str
    warmup: int
    repeats: int
    clock: Clock = "wall"
    allocator: str = "system default"

    @property
    def q1_ms(self) -> float:
        return _quantile(self.samples_ms, 0.25)

    @property
    def q3_ms(self) -> float:
        return _quantile(self.samples_ms, 0.75)

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples_ms"] = list(self.samples_ms)
        data["input_shape"] = list(self.input_shape)
        return {**data, "q1_ms": self.q1_ms, "q3_ms": self.q3_ms}

    def __str__(self) -> str:
        return (
            f"{self.median_ms:.3f} ms median (IQR {self.q1_ms:.3f}-{self.q3_ms:.3f}) over "
            f"{self.repeats} runs, batch {self.batch_size}, {self.threads} thread"
            f"{'' if self.threads == 1 else 's'}, "
            f"{self.device_name}, {self.clock} clock, torch {self.torch_version}"
        )


def _quantile(values: Sequence[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=float), q))


def count_problem(name: str, value: object, *, low: int = 1, default: int = 1) -> str | None:
    """The problem with a count option (an integer >= low) as '<problem>; <fix>', or None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        return f"{name} must be an integer >= {low}, got {quoted(value)}; pass {name}={default}"
    return None


def check_settings(
    *, batch_size: int, warmup: int, repeats: int, rounds: int | None = None
) -> None:
    """Raise :class:`LatencyError` unless the batch size, warm-up, repeat (and round) counts make
    sense."""
    counts = [
        ("batch_size", batch_size, 1, 1),
        ("warmup", warmup, 0, 2),
        ("repeats", repeats, 1, 5),
    ]
    if rounds is not None:
        counts.append(("rounds", rounds, 1, 3))
    problems = [
        problem
        for name, value, low, default in counts
        if (problem := count_problem(name, value, low=low, default=default))
    ]
    if problems:
        raise LatencyError("; ".join(problems))


def check_clock(clock: str, device: torch.device, threads: int) -> None:
    """Raise :class:`LatencyError` unless ``clock`` can be used with this device and threads."""
    if clock not in CLOCKS:
        raise LatencyError(f"clock must be wall or cpu, got {quoted(clock)}; pass clock=wall")
    if clock == "cpu" and (device.type != "cpu" or threads != 1):
        raise LatencyError(
            "clock=cpu times the calling thread's CPU time, so it needs device=cpu and threads=1 "
            f"(got device={device}, threads={threads}); use clock=wall otherwise"
        )


def example_input(
    *,
    space: Space | None = None,
    input_shape: Sequence[int] | None = None,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """A random batch: ``space``'s image shape, or ``input_shape`` (one example, no batch axis)."""
    if (space is None) == (input_shape is None):
        raise TypeError("give exactly one of space= and input_shape=")
    shape = (
        (space.in_chans, space.img_size, space.img_size)
        if space is not None
        else tuple(int(s) for s in input_shape)  # type: ignore[union-attr]
    )
    generator = torch.Generator().manual_seed(0)
    return torch.randn((batch_size, *shape), generator=generator).to(device)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@dataclass(frozen=True)
class Timings:
    """Milliseconds per timed forward, by both clocks (see the module docstring)."""

    wall_ms: tuple[float, ...]
    cpu_ms: tuple[float, ...]

    def get(self, clock: Clock) -> tuple[float, ...]:
        return self.wall_ms if clock == "wall" else self.cpu_ms


def timed_forwards(model: nn.Module, x: torch.Tensor, count: int) -> Timings:
    """Time ``count`` forwards of ``model`` on ``x`` (already on the same device)."""
    sync = _synchronizer(x.device)
    wall, cpu = [], []
    with torch.inference_mode():
        for _ in range(count):
            sync()
            start, start_cpu = time.perf_counter(), time.thread_time()
            model(x)
            sync()
            cpu.append((time.thread_time() - start_cpu) * 1e3)
            wall.append((time.perf_counter() - start) * 1e3)
    return Timings(tuple(wall), tuple(cpu))


def measure_latency(
    model: nn.Module,
    *,
    space: Space | None = None,
    input_shape: Sequence[int] | None = None,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    threads: int | None = None,
    warmup: int = 3,
    repeats: int = 10,
    clock: Clock = "wall",
    steady_allocator: bool = True,
) -> LatencyMeasurement:
    """Median latency of ``model`` for one batch of ``batch_size`` random inputs on ``device``.

    The input has ``space``'s image shape, or ``input_shape`` (one example, no batch axis). The
    model is moved to ``device`` (in place, as ``nn.Module.to`` does) and run in eval mode; its
    training flag is restored afterwards. ``threads`` sets torch's intra-op threads for the
    measurement (``None``: keep the current count) and the previous count is restored. ``warmup``
    untimed forwards come first, then ``repeats`` timed ones. ``clock="cpu"`` (one CPU thread
    only) times the thread's CPU time instead of the wall clock: see the module docstring.
    ``steady_allocator`` first fixes the C allocator's thresholds for the whole process (see
    :mod:`search.latency.allocator`); the allocator used is recorded.
    """
    check_settings(batch_size=batch_size, warmup=warmup, repeats=repeats)
    parsed = parse_device(device)
    allocator = _steady_allocator() if steady_allocator else "system default"
    x = example_input(space=space, input_shape=input_shape, batch_size=batch_size, device=parsed)
    was_training = model.training
    model.to(parsed).eval()
    try:
        with torch_threads(threads) as used_threads:
            check_clock(clock, parsed, used_threads)
            timed_forwards(model, x, warmup)
            samples = timed_forwards(model, x, repeats).get(clock)
    finally:
        model.train(was_training)
    return LatencyMeasurement(
        median_ms=statistics.median(samples),
        samples_ms=tuple(samples),
        batch_size=batch_size,
        input_shape=tuple(x.shape),
        threads=used_threads,
        device=str(parsed),
        device_name=device_description(parsed),
        torch_version=str(torch.__version__),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
        warmup=warmup,
        repeats=repeats,
        clock=clock,
        allocator=allocator,
    )


def interleaved_samples(
    keys: Sequence[K],
    build: Callable[[K], nn.Module],
    x: torch.Tensor,
    *,
    rounds: int,
    warmup: int,
    repeats: int,
    rng: random.Random,
    progress: bool | str = True,
) -> dict[K, list[Timings]]:
    """Time many models in ``rounds`` passes, each over all keys in a fresh random order.

    Each visit builds the model (``build(key)``), runs ``warmup`` untimed and ``repeats`` timed
    forwards, and frees it. Spreading every model's samples over the whole run means a drift in
    machine load (other processes, clock changes) hits all of them alike instead of a few. Returns,
    per key, the :class:`Timings` of each round. Threads are whatever torch is set to.
    ``progress``: true (a bar), false, or auto (a bar on a terminal, else a log line a minute).
    """
    if problem := count_problem("rounds", rounds, default=3):
        raise LatencyError(problem)
    samples: dict[K, list[Timings]] = {k: [] for k in keys}
    bar = Progress(progress, total=rounds * len(keys), desc="measuring", unit="subnet", logger=log)
    with bar:
        for _ in range(rounds):
            order = list(keys)
            rng.shuffle(order)
            for key in order:
                model = build(key).to(x.device).eval()
                timed_forwards(model, x, warmup)
                samples[key].append(timed_forwards(model, x, repeats))
                del model
                bar.update()
    return samples
