"""Shared behaviour of the command-line entry points.

A :class:`~supernet.errors.UserError` (bad config, missing file, impossible budget) is printed as
one line, ``error: <message>``, and the program exits with status 2 and no traceback; the override
``debug=true`` re-raises it with the traceback. So is an ``OSError`` (a directory that cannot be
written, a full disk): it names the path. Ctrl-C exits with status 130.

:func:`hydra_main` runs a Hydra app so that Hydra's own errors, raised before the task runs (a
misspelt override, an unknown config group option, a run directory that cannot be created), are
reported the same way instead of as Hydra's multi-line text or a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from omegaconf import DictConfig

from .errors import UserError

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "debug_requested",
    "fail",
    "hydra_main",
    "one_line",
    "os_error_message",
    "user_errors",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")


def one_line(message: str) -> str:
    """``message`` on one line: a heading ending in ``:`` and its ``- item`` lines become
    ``heading: item; item``; other line breaks become ``; ``."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message.strip()
    head, rest = lines[0], [line.removeprefix("- ").strip() for line in lines[1:]]
    return head + (" " if head.endswith(":") else "; ") + "; ".join(rest)


def fail(message: str) -> None:
    """Print ``error: message`` (on one line) to stderr and exit with :data:`EXIT_USER_ERROR`."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


def os_error_message(exc: OSError) -> str:
    """An ``OSError`` as a user error: what failed on which path, and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    path = exc.filename
    if path is None:
        return f"{reason}; check the paths given and free disk space"
    return (
        f"cannot use {path}: {reason}; give a path that exists (or can be created) and that you "
        "may write to"
    )


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether the command line says ``debug=true``."""
    return any(a.lstrip("+~").replace(" ", "").lower() == "debug=true" for a in argv)


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
        except OSError as exc:
            if _debug(cfg):
                raise
            fail(os_error_message(exc))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(EXIT_INTERRUPTED) from None
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


def _hydra_message(exc: Exception) -> str:
    """Hydra's composition errors, shortened to what was wrong and how to fix it."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the override {exc.override!r}; quote a value that holds special "
            "characters, as in key='a<=b' (Hydra's override grammar)"
        )
    cause = exc.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in struct" in str(cause):
        key = getattr(cause, "full_key", None) or str(cause)
        return f"unknown option {key}; check its spelling (`--cfg job` prints every option)"
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        missing = exc.missing_cfg_file or str(exc).splitlines()[0]
        return f"no config {missing}; the choices are {', '.join(exc.options)}"
    text = str(exc)
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0]})"
    return text.replace("\n", " ").strip()


def _run_dir_message(exc: OSError) -> str:
    """An ``OSError`` raised by Hydra itself: it creates and writes the run directory (its
    ``.hydra/`` copies of the config, the log file) before the task runs."""
    return (
        f"cannot write the run directory {exc.filename or ''}: {exc.strerror or exc}; pass "
        "hydra.run.dir=<a directory you may write to> (hydra.sweep.dir= with --multirun)"
    )


def hydra_main(main: Callable[[], Any], argv: Sequence[str] | None = None) -> None:
    """Call a ``@hydra.main`` function, reporting Hydra's own errors as one line (exit 2).

    ``HYDRA_FULL_ERROR`` lets the exceptions reach this function instead of Hydra's printer;
    an unexpected exception (a bug) still shows its full traceback.
    """
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    debug = debug_requested(sys.argv[1:] if argv is None else argv)
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except (HydraException, OmegaConfBaseException) as exc:
        if debug:
            raise
        fail(_hydra_message(exc))
    except OSError as exc:
        if debug:
            raise
        fail(_run_dir_message(exc))
