"""Reading a file written by ``torch.save`` safely: ``weights_only=True`` (a crafted pickle never
runs code), and every way the file can be something else — text (a log, a CSV, a Git LFS
pointer, an HTML error page), a truncated download, a pickle of arbitrary objects — is one
:class:`ReadError` line saying which."""

from __future__ import annotations

import pickle
import re
import warnings
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
    "zip_damage",
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
    if not head or head.startswith((b"PK", b"\x80")) or _ZIP_MAGIC.startswith(head):
        return None  # (the start of a zip archive cut after a byte or two is not text either)
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


#: How every file ``torch.save`` writes (a zip archive) starts.
_ZIP_MAGIC = b"PK\x03\x04"


def _safetensors(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file: a little-endian header length, then JSON."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 1e8


def load_torch_file(
    path: Path, map_location: Any = "cpu", safe_globals: Iterable[Any] = (), what: str = "file"
) -> Any:
    """``torch.load(path, weights_only=True)``, or one :class:`ReadError` saying why not.

    A zip archive's CRCs are checked first: torch reads a flipped byte in a tensor without a
    word, and one in the pickle as an 'unsupported operand', which is no attempt to run code."""
    start = text_start(path)
    if start is not None:
        raise ReadError(
            f"{path} is a text file (it starts {start!r}), not a file written by torch.save "
            "(a log, a table, a Git LFS pointer or a web page saved in its place?)"
        )
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        raise ReadError(
            f"cannot read {what} {path}: the file is empty (a write that failed, or a copy that "
            "did not finish?)"
        )
    if _safetensors(path):
        raise ReadError(
            f"{path} is a safetensors file (an exported model's weights), not a file written by "
            "torch.save"
        )
    damage = zip_damage(path)
    if damage is not None:
        raise ReadError(f"cannot read {what} {path}: the file is truncated or corrupt ({damage})")
    try:
        with torch.serialization.safe_globals(list(safe_globals)), warnings.catch_warnings():
            # a bare pickle's protocol: the error line below says what the file is
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the class or function it refused ("Unsupported global: GLOBAL print",
        # "unsupported GLOBAL posix.system whose module posix is blocked"); anything else is an
        # opcode it cannot read: garbage, or a pickle torch.save did not write
        if "global" not in str(exc).lower():
            raise ReadError(
                f"cannot read {what} {path}: the file is corrupt or not written by torch.save "
                f"({_unpickler_problem(exc)})"
            ) from None
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


def zip_damage(path: Path) -> str | None:
    """What is wrong with ``path`` if it starts as the zip archive ``torch.save`` writes but is
    not a whole one (its directory at the end is missing, a member's CRC fails); ``None`` for a
    whole archive and for any other kind of file."""
    try:
        with path.open("rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError:
        return None
    if not head or not _ZIP_MAGIC.startswith(head[: len(_ZIP_MAGIC)]):
        return None
    if len(head) < len(_ZIP_MAGIC):
        return f"only {len(head)} byte(s)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as exc:
        if "not a zip file" in str(exc):  # no end-of-archive record: the file was cut short
            return "the end of the archive, its directory, is missing"
        return first_sentence(str(exc))
    except (EOFError, ValueError, NotImplementedError) as exc:
        return first_sentence(str(exc)) or type(exc).__name__
    except OSError:
        return None
    # torch names the archive's top folder after the file it first wrote (a temporary one)
    return None if bad is None else f"the CRC check of its {bad.split('/', 1)[-1]} fails"


def damaged_torch_file(path: Path) -> bool:
    """Whether ``path`` starts as the zip archive ``torch.save`` writes but is not a whole one
    (see :func:`zip_damage`); an empty file counts as damaged too (what a full disk leaves).
    Another kind of file is not 'damaged'."""
    try:
        if path.stat().st_size == 0:
            return True
    except OSError:
        return False
    return zip_damage(path) is not None


def _unpickler_problem(exc: BaseException) -> str:
    """torch's unpickler error without its advice: the line naming the problem."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.endswith("WeightsUnpickler error:") and i + 1 < len(lines):
            return first_sentence(lines[i + 1])
        if "WeightsUnpickler error:" in line:
            return first_sentence(line.split("WeightsUnpickler error:", 1)[1])
    return first_sentence(str(exc)) or type(exc).__name__


def state_dict_problem(exc: BaseException) -> str:
    """The first problem ``load_state_dict``'s error lists (its first line only says there are
    some) and how many more there are, counting each missing or unexpected key; a
    ``KeyError``'s key."""
    if isinstance(exc, KeyError):
        return f"no {exc}"
    problems: list[str] = []
    for line in str(exc).splitlines()[1:]:
        line = line.strip()
        keys = re.match(r"(Missing|Unexpected) key\(s\) in state_dict: (.*)", line)
        if keys:
            kind = keys.group(1).lower()
            problems += [f'{kind} key "{k}"' for k in re.findall(r'"([^"]*)"', keys.group(2))]
        elif line:
            problems.append(first_sentence(line, limit=300))
    if not problems:
        return first_sentence(str(exc)) or type(exc).__name__
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return problems[0] + more
