"""Shared behaviour of the command-line entry points.

A :class:`~supernet.common.errors.UserError` (bad config, missing file, impossible budget) is
printed as one line, ``error: <message>``, and the program exits with status 2 and no traceback;
the override ``debug=true`` re-raises it with the traceback. So is an ``OSError`` (a directory
that cannot be written, a full disk): it names the path. Ctrl-C exits with status 130.

:func:`hydra_main` runs a Hydra app so that Hydra's own errors, raised before the task runs (a
misspelt override, an unknown config group option, a run directory that cannot be created), are
reported the same way instead of as Hydra's multi-line text or a traceback.

A refused command leaves the run directory as it found it: Hydra writes its ``.hydra/`` copies of
the config before the task runs, so :class:`KeepRunFiles` (a Hydra callback) notes the previous
ones and a user error puts them back (or, in a directory this command created and left holding
nothing else, removes what Hydra wrote). SIGTERM is handled as Ctrl-C is (exit status 143), so a
search or training stopped by ``kill`` tidies up as after Ctrl-C.

:func:`parse_args` and :func:`run_cli` do the same for the commands that take positional paths and
Hydra-style ``key=value`` options checked against a dataclass (``python -m search.export``,
``python -m search.report``, ``python -m supernet.convert``): an unknown key or a value of the
wrong type is one error line, and ``--help`` prints the module's usage.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import MAX_ERROR_CHARS, UserError, cap_text, quoted
from .startup import end_of_startup

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_TERMINATED",
    "EXIT_USER_ERROR",
    "MAX_ERROR_CHARS",
    "KeepRunFiles",
    "Terminated",
    "debug_requested",
    "exit_interrupted",
    "fail",
    "handle_sigterm",
    "hydra_main",
    "ignore_late_interrupts",
    "one_line",
    "os_error_message",
    "parse_args",
    "quoted",
    "run_cli",
    "user_errors",
]

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM


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
    """Print ``error: message`` (on one line, at most about :data:`MAX_ERROR_CHARS` characters)
    to stderr and exit with :data:`EXIT_USER_ERROR`."""
    print(f"error: {cap_text(one_line(cap_text(message, 8 * MAX_ERROR_CHARS)))}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill <pid>``, a scheduler's stop): raised like Ctrl-C's ``KeyboardInterrupt``,
    so that everything that tidies up after Ctrl-C does so after it too."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _ignore_signal(signum: int, frame: object) -> None:
    """(A SIGINT or SIGTERM after the command's work is over.)"""


def ignore_late_interrupts() -> None:
    """The command's work is over (done, failed or interrupted), so a SIGINT or SIGTERM from now
    on is ignored and the process exits as it was about to. Raised instead, it would strike
    whatever exit handler runs (a finalizer of torch's, say), which Python reports as
    ``Exception ignored in …`` with a traceback; and while Python tears its modules down (a
    second or so after torch), it has put back the default action of every signal it handles,
    which kills the finished command with the signal. ``SIG_IGN`` it leaves alone. A signal
    already pending goes to a no-op handler first: ``signal.signal`` runs the pending ones
    before it changes a handler, and a pending signal with ``SIG_IGN`` in place prints an
    error. A signal the process ignores stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return
    numbers = [n for n in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(n) != signal.SIG_IGN]
    for number in numbers:
        while True:
            try:
                signal.signal(number, _ignore_signal)
                break
            except KeyboardInterrupt:  # pending, for the old handler: the work is over anyway
                continue
    for number in numbers:
        signal.signal(number, signal.SIG_IGN)


def handle_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this process (from its main thread only); the
    command has started, so Ctrl-C raises ``KeyboardInterrupt`` again (see :mod:`.startup`)."""
    end_of_startup()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def interrupts_kept() -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the body stays an interrupt. A library that catches
    ``Exception`` around its work would otherwise report it as its own failure: torch.onnx's
    exporter wraps what went wrong in a ``TorchExportError``, and a ``KeyboardInterrupt`` that
    struck one of torch's lazy imports surfaces there as an ``AttributeError`` of the
    half-imported module (a traceback instead of ``interrupted``)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    previous = {
        number: handler
        for number in (signal.SIGINT, signal.SIGTERM)
        if callable(handler := signal.getsignal(number))  # Python's own: it raises
    }

    def note(signum: int, frame: Any) -> None:
        seen.append(signum)
        previous[signum](signum, frame)

    for number in previous:
        signal.signal(number, note)
    try:
        yield
    except Exception:
        if not seen:
            raise
        raise (Terminated() if seen[0] == signal.SIGTERM else KeyboardInterrupt()) from None
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def exit_interrupted(exc: KeyboardInterrupt) -> None:
    """Print ``interrupted`` (``terminated`` for SIGTERM) and exit with 130 (143)."""
    terminated = isinstance(exc, Terminated)
    print("terminated" if terminated else "interrupted", file=sys.stderr)
    raise SystemExit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED) from None


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
        handle_sigterm()
        logging.raiseExceptions = False  # a full disk must not print a logging traceback
        try:
            return task(cfg, *args, **kwargs)
        except UserError as exc:
            _restore_run_files()
            if _debug(cfg):
                raise
            fail(str(exc))
        except OSError as exc:
            _restore_run_files()
            if _debug(cfg):
                raise
            fail(os_error_message(exc))
        except KeyboardInterrupt as exc:
            exit_interrupted(exc)
        raise AssertionError("unreachable")  # pragma: no cover

    return wrapper


# -- the run directory's .hydra/ files ------------------------------------------------------------
@dataclass
class _RunFiles:
    """The run directory a Hydra run will write into, as it was before: whether it existed, and
    the bytes of each of Hydra's config copies (None: absent)."""

    run_dir: Path
    subdir: Path | None
    existed: bool
    files: dict[str, bytes | None] = field(default_factory=dict)
    new_root: Path | None = None  # the highest of run_dir and its parents that did not exist
    logs: frozenset[str] = frozenset()  # the log files it held (a refused command's new, empty
    # one is removed: Hydra opens it before the command can refuse the directory)


def _new_root(path: Path) -> Path | None:
    """The highest of ``path`` and its parents that does not exist yet (None: ``path`` exists):
    what making ``path`` creates."""
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


_HYDRA_FILES = ("config.yaml", "hydra.yaml", "overrides.yaml")
#: The apps' Hydra configs: a folder per config group.
_CONF = Path(__file__).parents[1] / "conf"
_snapshot: _RunFiles | None = None


class _Refused(BaseException):
    """A callback's refusal of a run directory: Hydra turns a callback's ``Exception`` into a
    warning and goes on, so it is a ``BaseException``, reported by :func:`hydra_main`."""


class KeepRunFiles(Callback):
    """Hydra callback (``hydra.callbacks``): refuse a run (or sweep) directory that holds
    another ``kind`` of run (see :mod:`.rundir`; a ``mode`` of training stands for its kind)
    before Hydra writes into it, and note the run directory's ``.hydra/`` files before Hydra
    overwrites them, so that a command refused later can put them back."""

    def __init__(self, kind: str | None = None) -> None:
        from .rundir import RUN_KINDS, TRAIN_MODES

        self.subdir = kind if kind in ("finetune", "scratch") else None  # (suggested)
        kind = TRAIN_MODES.get(kind, kind) if kind else None
        self.kind = kind if kind in RUN_KINDS else None  # (a bad mode= or command is the app's)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if self.kind is None:
            return
        from .rundir import claim_sweep_dir

        try:
            sweep_dir = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.sweep.dir"))))
        except (OmegaConfBaseException, TypeError, ValueError):
            return
        try:
            claim_sweep_dir(sweep_dir, self.kind, self.subdir)
        except UserError as exc:
            raise _Refused(str(exc)) from None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        global _snapshot
        _snapshot = None
        try:
            run_dir = Path(os.path.abspath(str(OmegaConf.select(config, "hydra.run.dir"))))
            subdir = config.hydra.output_subdir
        except (OmegaConfBaseException, TypeError, ValueError):
            return
        if self.kind is not None:
            from .rundir import claim_run_dir

            try:
                claim_run_dir(run_dir, self.kind, self.subdir)  # before Hydra writes there
            except UserError as exc:
                raise _Refused(str(exc)) from None
        hydra_dir = None if subdir is None else run_dir / str(subdir)
        snapshot = _RunFiles(run_dir, hydra_dir, run_dir.exists(), new_root=_new_root(run_dir))
        if snapshot.existed:
            with contextlib.suppress(OSError):
                snapshot.logs = frozenset(p.name for p in run_dir.glob("*.log"))
        if hydra_dir is not None:
            for name in _HYDRA_FILES:
                try:
                    snapshot.files[name] = (hydra_dir / name).read_bytes()
                except OSError:
                    snapshot.files[name] = None
        _snapshot = snapshot


def _only_hydra_files(run_dir: Path, subdir: Path | None) -> bool:
    """Whether ``run_dir`` holds nothing but what Hydra writes (its config copies, its log)."""
    for path in run_dir.iterdir():
        if subdir is not None and path == subdir and path.is_dir():
            if any(p.name not in _HYDRA_FILES for p in path.iterdir()):
                return False
        elif not (path.is_file() and path.suffix == ".log"):
            return False
    return True


def _remove_empty_parents(run_dir: Path, new_root: Path | None) -> None:
    """The parents of ``run_dir`` up to ``new_root`` that making it created, if still empty."""
    if new_root is None or new_root == run_dir:
        return
    parent = run_dir.parent
    while True:
        try:
            parent.rmdir()  # only when empty
        except OSError:
            return
        if parent == new_root or parent.parent == parent:
            return
        parent = parent.parent


def _restore_run_files(hydra_failed: bool = False) -> None:
    """After a refused command: the run directory's ``.hydra/`` files as they were before it (a
    directory this command created, if it holds nothing but Hydra's files, is removed).

    ``hydra_failed``: Hydra itself failed while it made the directory (a full disk), after
    this run's ``on_run_start`` noted it and before the job started, so there is no job's
    config to check the directory against."""
    global _snapshot
    snapshot, _snapshot = _snapshot, None
    if snapshot is None:
        return
    if not hydra_failed:
        try:
            from hydra.core.hydra_config import HydraConfig

            if Path(HydraConfig.get().runtime.output_dir) != snapshot.run_dir:
                return  # not the directory noted (a multirun job, or another app)
        except (ValueError, OmegaConfBaseException):
            return
    try:
        if not snapshot.existed:
            if snapshot.run_dir.is_dir() and _only_hydra_files(snapshot.run_dir, snapshot.subdir):
                shutil.rmtree(snapshot.run_dir)
                _remove_empty_parents(snapshot.run_dir, snapshot.new_root)
            return
        for log in snapshot.run_dir.glob("*.log"):
            if log.name not in snapshot.logs and log.is_file() and log.stat().st_size == 0:
                log.unlink()
        if snapshot.subdir is None:
            return
        for name, content in snapshot.files.items():
            path = snapshot.subdir / name
            if content is None:
                path.unlink(missing_ok=True)
            elif not path.is_file() or path.read_bytes() != content:
                from .atomic import atomic_write

                atomic_write(path, lambda tmp, content=content: Path(tmp).write_bytes(content))
        if snapshot.subdir.is_dir() and not any(snapshot.subdir.iterdir()):
            snapshot.subdir.rmdir()
    except OSError:
        pass  # best effort: the error being reported matters more


def _space_field(key: str) -> str | None:
    """``rel_pos`` for ``space.rel_pos`` when some model family's space has that field."""
    prefix, _, name = key.partition(".")
    if prefix != "space" or not name or "." in name:
        return None
    from dataclasses import is_dataclass

    from supernet.family import family_names, get_family

    for family in family_names():
        space_cls = get_family(family).space_cls
        if is_dataclass(space_cls) and name in {f.name for f in fields(space_cls)}:
            return name
    return None


def _hydra_message(exc: Exception) -> str:
    """Hydra's composition errors, shortened to what was wrong and how to fix it."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    if isinstance(exc, OverrideParseException):
        return (
            f"cannot parse the override {exc.override!r}; quote a value that holds special "
            "characters, as in key='a<=b' (Hydra's override grammar)"
        )
    group = re.search(r"Could not override '([^']+)'\. No match in the defaults list", str(exc))
    if group is not None:
        key = group.group(1)
        extra = " (a search's space comes from its supernet checkpoint)" if key == "space" else ""
        return (
            f"unknown option {key}: this command has no {key} to choose{extra}; drop {key}=, "
            "or check its spelling (--help lists the options)"
        )
    cause = exc.__cause__
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and "not in struct" in str(cause):
        key = getattr(cause, "full_key", None) or str(cause)
        field = _space_field(key)
        if field is not None:
            return (
                f"unknown option {key}: the space preset does not list {field}; add it with "
                f"+{key}=<value> (a + adds a key the preset leaves out)"
            )
        return f"unknown option {key}; check its spelling (`--cfg job` prints every option)"
    if isinstance(cause, OmegaConfBaseException):  # checked against a structured config
        from .config import config_message

        return config_message(cause)
    if isinstance(exc, MissingConfigException) and exc.options is not None:
        missing = exc.missing_cfg_file or str(exc).splitlines()[0]
        plugin = _missing_plugin(missing, exc.options)
        if plugin is not None:
            return plugin
        return f"no config {missing}; the choices are {', '.join(exc.options)}"
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        # a list given to a group (budget=[1M,2M]) names one config per item, with no choices
        group, _, name = exc.missing_cfg_file.rpartition("/")
        folder = _CONF / group
        if group and folder.is_dir():
            choices = sorted(p.stem for p in folder.glob("*.yaml"))
            return (
                f"no config {group}/{name}: {group}= chooses one of {', '.join(choices)}; set "
                f"one of its options as {group}.<option>=<value> (`--help` lists them)"
            )
    text = str(exc)
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({str(cause).splitlines()[0]})"
    return text.replace("\n", " ").strip()


#: The Hydra launchers of the ``launchers`` extra: config name → the package that provides it.
LAUNCHER_PLUGINS = {
    "joblib": "hydra-joblib-launcher",
    "submitit_local": "hydra-submitit-launcher",
    "submitit_slurm": "hydra-submitit-launcher",
}


def _missing_plugin(missing: str, options: Sequence[str]) -> str | None:
    """``hydra/launcher=joblib`` (or a submitit launcher) without its plugin installed: which
    package provides it and how to install it."""
    group, _, name = missing.removesuffix(".yaml").rpartition("/")
    if group != "hydra/launcher" or name not in LAUNCHER_PLUGINS or name in options:
        return None
    return (
        f"no Hydra launcher {name!r}: its plugin ({LAUNCHER_PLUGINS[name]}) is not installed; "
        "pip install 'vitnas[launchers]' (the launchers installed now: "
        f"{', '.join(options)})"
    )


def _run_dir_message(exc: OSError, where: str | Path | None) -> str:
    """An ``OSError`` raised by Hydra itself: it creates and writes the run directory (its
    ``.hydra/`` copies of the config, the log file) before the task runs. A write that fails
    names no file: ``where`` is then the directory the run was to use."""
    where_text = f" {where}" if where else ""
    if exc.errno == errno.ENOSPC:
        from .atomic import free_space

        free = f" ({free_space(Path(where))} free there)" if where else ""
        return (
            f"cannot write the run directory{where_text}: no space left on the device{free}; "
            "free some space, or pass hydra.run.dir=<a directory on another disk> "
            "(hydra.sweep.dir= with --multirun)"
        )
    return (
        f"cannot write the run directory{where_text}: {exc.strerror or exc}; pass "
        "hydra.run.dir=<a directory you may write to> (hydra.sweep.dir= with --multirun)"
    )


def _group_given_a_value(exc: ValueError, argv: Sequence[str]) -> str | None:
    """``train=5``: a config group given a number (Hydra raises a bare ValueError, whose
    traceback was all the user saw), as one line naming the override."""
    if not str(exc).startswith("Config group override must be a string or a list"):
        return None
    groups = {p.name for p in _CONF.iterdir() if p.is_dir()}
    scalar = re.compile(r"[+~]*(\w+)=(?:[-+0-9.eE]+|true|false|null)", re.I)
    shown = next((a for a in argv if (m := scalar.fullmatch(a)) and m.group(1) in groups), None)
    key = shown.split("=", 1)[0].lstrip("+~") if shown else "a config group"
    return (
        f"{shown or key}: {key} is a config group, whose value names one of its configs "
        f"({key}=<name>: `--help` lists them); set one of its options as {key}.<option>=<value>"
    )


def hydra_main(main: Callable[[], Any], argv: Sequence[str] | None = None) -> None:
    """Call a ``@hydra.main`` function, reporting Hydra's own errors as one line (exit 2).

    ``HYDRA_FULL_ERROR`` lets the exceptions reach this function instead of Hydra's printer;
    an unexpected exception (a bug) still shows its full traceback. Without ``argv`` (the
    process's own command line), interrupts are ignored once it returns.
    """
    from hydra.errors import HydraException

    debug = debug_requested(sys.argv[1:] if argv is None else argv)
    os.environ["HYDRA_FULL_ERROR"] = "1"
    handle_sigterm()
    try:
        main()
    except KeyboardInterrupt as exc:  # before the task started (composing the config)
        exit_interrupted(exc)
    except (HydraException, OmegaConfBaseException) as exc:
        if debug:
            raise
        fail(_hydra_message(exc))
    except _Refused as exc:  # KeepRunFiles: another kind of run in the run (or sweep) dir
        if debug:
            raise
        fail(str(exc))
    except ValueError as exc:
        group = _group_given_a_value(exc, sys.argv[1:] if argv is None else argv)
        if group is not None and not debug:
            fail(group)
        # Hydra's own check of its flags (--cfg with -m, say): a ValueError, not a HydraException
        if debug or not str(exc).startswith("Only one of --run, --multirun, --cfg"):
            raise
        fail(
            f"{exc}; give one of them: --cfg job prints the composed config without running "
            "(drop -m), -m runs the sweep"
        )
    except BrokenPipeError:  # stdout closed early (`… --help | head`): not the run directory
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as exc:
        if debug:
            raise
        where = exc.filename or (_snapshot.run_dir if _snapshot is not None else None)
        _restore_run_files(hydra_failed=True)  # a directory it made: a half-written .hydra/
        fail(_run_dir_message(exc, where))
    finally:
        if argv is None:  # the process ends now
            ignore_late_interrupts()


def parse_args(argv: Sequence[str], schema: type[T], usage: str) -> tuple[list[str], T]:
    """Split ``argv`` into positional arguments and a config of type ``schema``."""
    if any(a in ("-h", "--help") for a in argv):
        print(usage.strip())
        raise SystemExit(0)
    known = [f.name for f in fields(schema)]  # type: ignore[arg-type]
    for arg in argv:
        if arg.startswith("-") and "=" not in arg and not Path(arg).exists():
            raise UserError(
                f"unknown flag {quoted(arg)}: this command takes key=value options, not flags "
                f"(the options are {', '.join(known)}; --help explains them)"
            )
    positional = [a for a in argv if not a.partition("=")[0].isidentifier() or "=" not in a]
    dotlist = [a for a in argv if a not in positional]
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
    """Run ``main(argv)`` reporting a user error as one line (exit 2), Ctrl-C as exit 130.
    Without ``argv`` (the process's own command line), interrupts are ignored once it returns."""
    own_command = argv is None
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
    finally:
        if own_command:  # the process ends now
            ignore_late_interrupts()
