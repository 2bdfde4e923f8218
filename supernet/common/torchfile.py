"""Reading a file written by ``torch.save`` safely: ``weights_only=True`` (a crafted pickle never
runs code), and every way the file can be something else — text (a log, a CSV, a Git LFS
pointer, an HTML error page), a truncated download, a pickle of arbitrary objects — is one
:class:`ReadError` line saying which."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from .errors import first_sentence

__all__ = [
    "ReadError",
    "damaged_torch_file",
    "load_torch_file",
    "state_dict_problem",
    "text_start",
]


class ReadError(Exception):
    """Why a file is not a readable ``torch.save`` file (one line, without the fix)."""


def text_start(path: Path, size: int = 512) -> str | None:
    """The first line of ``path`` when the file starts as text, else None (``torch.save`` files
    are a zip archive, or a pickle starting with a protocol byte)."""
    try:
        with path.open("rb") as f:
            head = f.read(size)
    except OSError:
        return None
    if not head or head.startswith((b"PK", b"\x80")):
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not only a character cut at the end of the sample
            return None
        text = head[: exc.start].decode("utf-8")
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:60] + ("…" if len(first) > 60 else "")


def load_torch_file(
    path: Path, map_location: Any = "cpu", safe_globals: Iterable[Any] = (), what: str = "file"
) -> Any:
    """``torch.load(path, weights_only=True)``, or one :class:`ReadError` saying why not."""
    start = text_start(path)
    if start is not None:
        raise ReadError(
            f"{path} is a text file (it starts {start!r}), not a file written by torch.save "
            "(a log, a table, a Git LFS pointer or a web page saved in its place?)"
        )
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise ReadError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, "
            "which could run code when unpickled"
        ) from None
    except (MemoryError, RecursionError):
        raise ReadError(
            f"cannot read {what} {path}: it is corrupt (it asks for more than it holds)"
        ) from None
    except Exception as exc:  # torch's unpickler raises IndexError, KeyError ... on garbage
        first = first_sentence(str(exc)) or type(exc).__name__
        raise ReadError(
            f"cannot read {what} {path}: the file is truncated or corrupt ({first})"
        ) from None


def damaged_torch_file(path: Path) -> bool:
    """Whether ``path`` starts as the zip archive ``torch.save`` writes but is not a whole one:
    its directory at the end is missing (truncated) or a member's CRC fails (corrupted). Another
    kind of file is not 'damaged'."""
    try:
        with path.open("rb") as f:
            if f.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is not None
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError):
        return True
    except OSError:
        return False


def state_dict_problem(exc: BaseException) -> str:
    """The first problem ``load_state_dict``'s error lists (its first line only says there are
    some), and how many more there are; a ``KeyError``'s key."""
    if isinstance(exc, KeyError):
        return f"no {exc}"
    lines = [ln.strip() for ln in str(exc).splitlines()[1:] if ln.strip()]
    if not lines:
        return first_sentence(str(exc)) or type(exc).__name__
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return first_sentence(lines[0], limit=300) + more
