"""Errors a user can cause by what they type. Entry points print these as one line, no traceback."""

from __future__ import annotations

__all__ = ["CheckpointError", "UserError"]


class UserError(Exception):
    """A problem with the user's input (config, file, budget ...) and its fix, in one message."""


class CheckpointError(UserError):
    """A checkpoint or export that is missing, corrupt, unsafe or made for another space."""
