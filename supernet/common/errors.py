"""Errors a user can cause by what they type. Entry points print these as one line, no traceback."""

from __future__ import annotations

__all__ = [
    "MAX_ERROR_CHARS",
    "CheckpointError",
    "OutputError",
    "UserError",
    "cap_text",
    "first_sentence",
    "quoted",
]

#: The longest error line printed; the rest is cut (a value quoted in a message can be huge).
MAX_ERROR_CHARS = 2000


class UserError(Exception):
    """A problem with the user's input (config, file, budget ...) and its fix, in one message."""


class CheckpointError(UserError):
    """A checkpoint or export that is missing, corrupt, unsafe or made for another space."""


class OutputError(UserError, OSError):
    """An output that cannot be written: a directory that is a file, no permission, a full disk.

    Also an ``OSError``, so code that catches those still does."""


def cap_text(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start (the problem) and its end
    (the fix)."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail]} … ({len(text) - limit} characters cut) … {text[-tail:]}"


def first_sentence(text: str, limit: int = 200) -> str:
    """What a library's error ``text`` says went wrong: its first non-empty line up to the end of
    its first sentence, at most ``limit`` characters (torch's go on with advice for its own
    developers, and a cut at a fixed length ended mid-sentence)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if line.startswith("[enforce fail at") and "] " in line:  # torch's C++ check: its source line
        line = line.split("] ", 1)[1].lstrip(". ")
    end = line.find(". ")
    if end != -1:
        line = line[:end]
    line = line.rstrip(".")
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def quoted(value: object, limit: int = 200) -> str:
    """``repr(value)`` for quoting a user's value in a message: huge strings, lists and mappings
    are abbreviated while they are formatted (never built whole), then cut to ``limit``."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = max(limit, 20)
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 20
    short.maxlevel = 4
    return cap_text(short.repr(value), limit)
