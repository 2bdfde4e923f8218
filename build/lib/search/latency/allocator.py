"""Keeping the C allocator from giving memory back to the OS between forwards.

glibc's ``malloc`` serves large blocks with ``mmap`` and trims the top of the heap on ``free``, and
its thresholds for both move with the allocation history. A forward at batch 32 frees and
re-allocates megabytes of activations, so depending on what the process ran before, each forward
may page-fault thousands of times: the same model was measured 25-40 % slower in one state than
in another, which no latency model can predict. :func:`steady_allocator` fixes both thresholds so
that freed memory stays in the heap and is reused (what jemalloc or tcmalloc do, and what a tuned
inference server runs with). It changes the whole process for good: the heap keeps its peak size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

__all__ = ["steady_allocator"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_DEFAULT = "system default"


@functools.cache
def steady_allocator() -> str:
    """Fix glibc's trim and mmap thresholds (once per process); return what the allocator is.

    Elsewhere than glibc on Linux this changes nothing and returns ``"system default"``.
    """
    if platform.system() != "Linux":
        return _DEFAULT
    name = ctypes.util.find_library("c")
    if not name:
        return _DEFAULT
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return _DEFAULT
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for mmap_threshold in (1 << 30, 32 << 20):  # older glibc caps the threshold at 32 MiB
        if mallopt(_M_MMAP_THRESHOLD, mmap_threshold):
            break
    else:
        return _DEFAULT
    if not mallopt(_M_TRIM_THRESHOLD, 1 << 30):
        return _DEFAULT
    return f"glibc, steady (no trim, mmap above {mmap_threshold >> 20} MiB)"
