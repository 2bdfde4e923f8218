"""Errors a user can cause by what they type. Entry points print these as one line, no traceback."""

from __future__ import annotations

__all__ = ["CheckpointError", "OutputError", "UserError"]


class UserError(Exception):
    """A problem with the user's input (config, file, budget ...) and its fix, in one message."""


class CheckpointError(UserError):
    """A checkpoint or export that is missing, corrupt, unsafe or made for another space."""


class OutputError(UserError, OSError):
    """An output that cannot be written: a directory that is a file, no permission, a full disk.

    Also an ``OSError``, so code that catches those still does."""
