"""Ctrl-C while a command starts: ``interrupted`` and exit status 130, not a traceback (SIGTERM:
``terminated`` and 143, not a silent death by the signal).

A command spends its first seconds importing torch, Hydra and Optuna; Python's own
``KeyboardInterrupt`` there prints a traceback through the import machinery. The ``supernet`` and
``search`` packages call :func:`quiet_startup_interrupts` when they are imported, which acts only
in a process that is one of their commands (``python -m supernet.…``/``search.…`` or a
``vitnas-*`` console script); the command hands Ctrl-C back to ``KeyboardInterrupt`` as soon as
it starts (:func:`supernet.common.cli.handle_sigterm`), so that everything after that point
tidies up after an interrupt as before. Nothing is written before then, so nothing is lost.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["end_of_startup", "quiet_startup_interrupts"]

#: The packages whose modules are commands, and the prefix of their console scripts.
PACKAGES = ("supernet", "search")
SCRIPT_PREFIX = "vitnas-"
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


#: Commands whose parent reports an interrupt: they stop without a word.
QUIET_MODULES = ("search._worker",)


def _interrupted_while_starting(signum: int, frame: object) -> None:
    terminated = signum == signal.SIGTERM
    try:
        if _program() not in [("module", name) for name in QUIET_MODULES]:
            sys.stderr.write("terminated\n" if terminated else "interrupted\n")
            sys.stderr.flush()
    finally:
        os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)


def _program() -> tuple[str, str] | None:
    """What this interpreter was started to run, from its own command line (``sys.orig_argv``,
    which a multiprocessing child does not inherit, unlike ``sys.argv``): ``("module", name)``
    for ``-m``, ``("script", path)``, or None (``-c``, an interactive session)."""
    args = iter(list(getattr(sys, "orig_argv", []))[1:])
    for arg in args:
        if arg == "-m":
            name = next(args, None)
            return ("module", name) if name else None
        if arg.startswith("-m"):
            return "module", arg[2:]
        if arg in ("-X", "-W"):
            next(args, None)  # the option's value
        elif arg == "-c" or arg == "-":
            return None
        elif not arg.startswith("-"):
            return "script", arg
    return None


def is_a_command() -> bool:
    """Whether this process runs one of the packages' commands."""
    program = _program()
    if program is None:
        return False
    kind, name = program
    if kind == "module":
        return name.split(".")[0] in PACKAGES
    return os.path.basename(name).startswith(SCRIPT_PREFIX)


def quiet_startup_interrupts() -> None:
    """In a command's process, until :func:`end_of_startup`: Ctrl-C prints ``interrupted`` and
    exits with 130, SIGTERM ``terminated`` and 143. (A process started with a signal ignored
    keeps ignoring it.)"""
    if threading.current_thread() is not threading.main_thread() or not is_a_command():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupted_while_starting)


def end_of_startup() -> None:
    """The command has started: Ctrl-C raises ``KeyboardInterrupt`` again, and SIGTERM is the
    command's to handle (:func:`supernet.common.cli.handle_sigterm`)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is _interrupted_while_starting:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
