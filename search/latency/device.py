"""Which device a latency is measured on: parsing, a stable description, and thread settings."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from supernet.common.errors import quoted
from supernet.common.resources import check_threads

from .errors import LatencyError

__all__ = [
    "device_description",
    "device_kind",
    "effective_threads",
    "latency_device_option",
    "parse_device",
    "torch_threads",
]


def device_kind(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a :class:`torch.device`, checked for its form
    only: the device a latency profile was calibrated on need not be on this machine."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise LatencyError(f"unknown device {quoted(device)}; use cpu, cuda or cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise LatencyError(
            f"latency can be measured on cpu or cuda, not {parsed.type!r}; pass device=cpu or cuda"
        )
    return torch.device("cpu") if parsed.type == "cpu" else parsed


def latency_device_option(option: str, value: Any) -> str:
    """The value of an option that names the device latency is predicted for (``cpu``, ``cuda``
    or ``cuda:N``): checked for its form only, since a GPU's profile predicts on any machine."""
    if not isinstance(value, str) or not re.fullmatch(r"cpu|cuda(:(0|[1-9]\d*))?", value):
        raise LatencyError(
            f"{option} must be the device a latency profile was calibrated on (cpu, cuda or "
            f"cuda:N), got {quoted(value)}; pass {option}=cpu"
        )
    return value


def parse_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a :class:`torch.device`, checked to be usable."""
    parsed = device_kind(device)
    if parsed.type == "cpu":
        return parsed
    if not torch.cuda.is_available():
        raise LatencyError(
            f"device={device}: CUDA is not available on this machine (no CUDA device); measure "
            "with device=cpu, or on the machine with the GPU"
        )
    index = torch.cuda.current_device() if parsed.index is None else parsed.index
    if index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise LatencyError(
            f"device={device}: this machine has {count} CUDA device(s), cuda:0 to "
            f"cuda:{count - 1}; use one of them"
        )
    return torch.device("cuda", index)


def _cpu_model_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                return " ".join(value.split())
    return platform.processor() or platform.machine() or "unknown CPU"


def _logical_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def device_description(device: str | torch.device = "cpu") -> str:
    """The hardware a latency belongs to, used to match profiles to the machine.

    CPU: the model name from ``/proc/cpuinfo`` and the number of CPUs this process may use
    (``"cpu: AMD EPYC, 2 CPUs"``); CUDA: the device name (``"cuda: NVIDIA H100 80GB HBM3"``). The
    thread count is not part of it: profiles record it separately.
    """
    parsed = parse_device(device)
    if parsed.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(parsed)}"
    return f"cpu: {_cpu_model_name()}, {_logical_cpus()} CPUs"


def effective_threads(threads: int | None) -> int:
    """The intra-op thread count a measurement will run with (``None``: torch's current one)."""
    if threads is None:
        return torch.get_num_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LatencyError(
            f"threads must be a positive integer or null, got {quoted(threads)}; pass threads=1 "
            "or null (torch's default)"
        )
    check_threads("threads", threads)
    return threads


@contextmanager
def torch_threads(threads: int | None) -> Iterator[int]:
    """Run the body with ``threads`` intra-op threads, then restore the previous count."""
    wanted = effective_threads(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
