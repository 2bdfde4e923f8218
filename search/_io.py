"""Atomic file writes with ordinary permissions.

``supernet.checkpoint.atomic_write`` builds the file with ``tempfile.mkstemp``, which creates it
readable by its owner only (0600); tables and plots are meant to be shared, so they get the
permissions any new file gets under the current umask (0644 usually).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supernet.checkpoint import atomic_write

__all__ = ["atomic_write_file", "default_mode", "share_tree"]


def default_mode(directory: bool = False) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write_file(path: str | Path, write: Callable[[str], Any]) -> None:
    """``write(tmp)``, then rename ``tmp`` to ``path`` in one step, with the umask's mode."""

    def write_then_chmod(tmp: str) -> None:
        write(tmp)
        os.chmod(tmp, default_mode())

    atomic_write(path, write_then_chmod)


def share_tree(root: str | Path) -> None:
    """Give a directory built with ``tempfile.mkdtemp`` (0700) the umask's modes throughout."""
    root = Path(root)
    os.chmod(root, default_mode(directory=True))
    for path in root.rglob("*"):
        os.chmod(path, default_mode(directory=path.is_dir()))
