"""Child processes that do not outlive their parent."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None) -> None:
    """In a child process: have Linux send it SIGTERM when its parent dies (``kill -9`` of the
    parent alone, the OOM killer), and stop at once if ``parent`` (its pid) is gone already —
    re-parented before the request took effect."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # (a search worker's pipe watch still ties it to its parent)
    if parent is not None and os.getppid() != parent:
        os._exit(143)
