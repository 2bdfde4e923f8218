"""Shared behaviour of the command-line entry points.

A :class:`~supernet.errors.UserError` (bad config, missing file, impossible budget) is printed as
one line, ``error: <message>``, and the program exits with status 2 and no traceback; the override
``debug=true`` re-raises it with the traceback. Ctrl-C exits with status 130.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from omegaconf import DictConfig

from .errors import UserError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USER_ERROR", "fail", "user_errors"]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")


def fail(message: str) -> None:
    """Print ``error: message`` to stderr and exit with :data:`EXIT_USER_ERROR`."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def _debug(cfg: object) -> bool:
    return isinstance(cfg, DictConfig) and bool(cfg.get("debug", False))


def user_errors(task: Callable[..., T]) -> Callable[..., T]:
    """Decorate a Hydra task function (under ``@hydra.main``) to report user errors in one line."""

    @functools.wraps(task)
    def wrapper(cfg: Any, *args: Any, **kwargs: Any) -> T:
        try:
            return task(cfg, *args, **kwargs)
        except UserError as exc:
            if _debug(cfg):
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper
