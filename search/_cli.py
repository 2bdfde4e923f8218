"""Command-line parsing shared by ``python -m search.export`` and ``python -m search.report``.

Both take positional paths and Hydra-style ``key=value`` overrides, checked against a
structured config (a dataclass): an unknown key or a value of the wrong type is one error line.
``--help`` prints the module's usage. User errors, and ``OSError`` (an ``out=`` that cannot be
written), exit with status 2 (``debug=true`` shows the traceback), as in the Hydra apps; Ctrl-C
with 130, SIGTERM with 143.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from supernet.cli import (
    debug_requested,
    exit_interrupted,
    fail,
    handle_sigterm,
    os_error_message,
)
from supernet.errors import UserError, quoted

T = TypeVar("T")


def parse_args(argv: Sequence[str], schema: type[T], usage: str) -> tuple[list[str], T]:
    """Split ``argv`` into positional arguments and a config of type ``schema``."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage.strip())
        raise SystemExit(0)
    positional = [a for a in argv if not a.partition("=")[0].isidentifier() or "=" not in a]
    dotlist = [a for a in argv if a not in positional]
    known = [f.name for f in fields(schema)]  # type: ignore[arg-type]
    for item in dotlist:
        key = item.partition("=")[0]
        if key not in known:
            raise UserError(
                f"unknown option {quoted(key)}; the options are {', '.join(known)} (check its "
                "spelling)"
            )
        try:
            OmegaConf.from_dotlist([item])
        except (yaml.YAMLError, OmegaConfBaseException):
            raise UserError(
                f"cannot parse the override {quoted(item)}; quote a value that holds special "
                "characters, as in key='a[1'"
            ) from None
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(dotlist))
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None)
        raise UserError(
            f"{key + ': ' if key else ''}{str(exc).splitlines()[0]}; give {key or 'it'} a value "
            "of the right type (see --help)"
        ) from None
    return positional, config  # type: ignore[return-value]


def run_cli(main: Callable[[Sequence[str]], Any], argv: Sequence[str] | None = None) -> None:
    """Run ``main(argv)`` reporting a user error as one line (exit 2), Ctrl-C as exit 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    handle_sigterm()
    logging.raiseExceptions = False  # a full disk must not print a logging traceback
    try:
        main(argv)
    except UserError as exc:
        if debug:
            raise
        fail(str(exc))
    except OSError as exc:
        if debug:
            raise
        fail(os_error_message(exc))
    except KeyboardInterrupt as exc:
        exit_interrupted(exc)
