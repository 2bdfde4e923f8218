"""Writes that never leave half a file or half a directory behind.

A file is written beside its target and renamed over it in one step; a directory is built
beside its target and renamed into place. A crash or kill at any moment leaves the old version
or the new one. Results get the modes any new file or directory gets under the umask.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UserError

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "check_target_dir",
    "default_mode",
    "move_into_place",
    "staging_dir",
]


def default_mode(directory: bool = False) -> int:
    """The mode a new file (or directory) gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)``, flush it to disk, and rename it to ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, default_mode())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_target_dir(path: Path, overwrite: bool, name: str, hint: str) -> None:
    """Refuse to replace a file, or a non-empty directory unless ``overwrite``.

    ``name`` says what the target is in the message (``out=runs/x``); ``hint`` how to overwrite.
    """
    if path.exists() and not path.is_dir():
        raise UserError(f"{name} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(f"{name} exists and is not empty; choose another or pass {hint}")


def staging_dir(target: Path) -> Path:
    """An empty directory beside ``target`` (same filesystem, so it can be renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    os.chmod(staged, default_mode(directory=True))  # mkdtemp makes it private
    return staged


def move_into_place(staged: Path, target: Path) -> None:
    """Rename ``staged`` to ``target``, replacing an existing ``target`` directory."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(target)
