"""What this machine can hold: CPU cores and free memory, and the checks that use them.

A thread count far above the cores (``threads=100000``) makes OpenMP crash, and a space whose
weights exceed the free memory makes the allocator fail or the OOM killer strike. Both are
refused here, before anything is started, with one line saying what the machine has.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError

__all__ = [
    "ResourceError",
    "available_memory",
    "check_memory",
    "check_threads",
    "cpu_cores",
    "format_bytes",
    "process_memory",
]


class ResourceError(UserError):
    """More threads, workers or memory than this machine has."""


def cpu_cores() -> int:
    """The CPUs this process may run on (its affinity mask, as ``taskset`` or a cgroup sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _cgroup_free() -> int | None:
    """Memory left under this process's cgroup (v2) limit, if it has one."""
    try:
        cgroup = Path("/proc/self/cgroup").read_text().strip().splitlines()[-1].split(":", 2)[2]
        base = Path("/sys/fs/cgroup") / cgroup.lstrip("/")
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, IndexError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes that can be allocated without swapping (``MemAvailable``, or the cgroup's room if
    smaller); None where it cannot be told."""
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    room = _cgroup_free()
    return free if room is None else min(free, room)


def process_memory() -> int | None:
    """This process's resident memory in bytes (Linux), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def format_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_memory(needed: int, what: str, fix: str) -> None:
    """Refuse when ``needed`` bytes exceed the memory available: ``what`` needs …; ``fix``."""
    free = available_memory()
    if free is not None and needed > free:
        raise ResourceError(
            f"{what} needs about {format_bytes(needed)} of memory, but this machine has "
            f"{format_bytes(free)} available; {fix}"
        )


def check_threads(option: str, value: int | None) -> int | None:
    """A thread count (None: torch's default) of at most the CPU cores this process may use."""
    cores = cpu_cores()
    if value is not None and value > cores:
        raise ResourceError(
            f"{option}={value} is more than the {cores} CPU core(s) this process may use; more "
            f"threads than cores only slow it down: use {option}={cores} or fewer (or null)"
        )
    return value
