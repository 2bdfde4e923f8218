"""What the commands show while they run: report lines and progress.

**Report lines** (a search's header and summary, a worker's note) go through :func:`say`, a
``logging`` record: Hydra's job log file (``<run dir>/<job name>.log``) gets them with a
timestamp, like every other record, while the terminal shows the plain text once, on stdout or
stderr as before. Hydra's console handler (it prints records with a timestamp) skips these
records; :func:`say` prints them itself. Without Hydra (the Python API) they are printed the same.

**Progress** (:class:`Progress`): a tqdm bar on a terminal only. The option that controls it
(``train.progress``, ``search.progress``) takes ``auto`` (the default), ``true`` or ``false``:

- ``auto``: the bar when stderr is a terminal; otherwise (a log file, a pipe, Hydra's joblib or
  submitit jobs) no bar, and a plain log line at most every :data:`LOG_EVERY_S` seconds, so a
  long epoch still shows it is moving without filling a file with carriage returns;
- ``true``: the bar, wherever stderr goes;
- ``false``: neither.

The bar writes to stderr directly, never to a log file. While it is shown, the console's log
records and :func:`say`'s lines are written through ``tqdm.write``: the bar is cleared, the line
written on its own and the bar drawn again below it (a terminal shows stdout and stderr mixed, so
a record written straight after the bar would be glued to it).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from tqdm import tqdm

from .errors import UserError, quoted

__all__ = ["LOG_EVERY_S", "PROGRESS_CHOICES", "Progress", "plural", "progress_mode", "say"]

#: At most one progress log line this often (seconds) when no bar is shown (``auto``, no TTY).
LOG_EVERY_S = 60.0

#: What the progress options accept (``true``/``false`` also as booleans).
PROGRESS_CHOICES = ("auto", "true", "false")


# -- report lines --------------------------------------------------------------------------------
def plural(n: int, word: str) -> str:
    """``1 run``, ``2 runs``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Said(logging.Filter):
    """On a console handler: skip the records :func:`say` prints itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "vitnas_said", False)


class _Printer(logging.Handler):
    """Print a :func:`say` record's message, unformatted, on the stream it names (looked up at
    each record, so that a redirected ``sys.stdout`` is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "vitnas_said", False):
            return
        stream = sys.stderr if getattr(record, "vitnas_stderr", False) else sys.stdout
        try:
            tqdm.write(record.getMessage(), file=stream)  # around a bar that is shown
            stream.flush()
        except Exception:  # a closed pipe: as print() would, but never a logging traceback
            self.handleError(record)


_SAID = _Said()


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers that write ``logger``'s records to a terminal stream (Hydra's ``console``):
    stream handlers that are not files, on the logger and the loggers above it."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += [
            h
            for h in current.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        ]
        current = current.parent if current.propagate else None
    return found


def say(logger: logging.Logger, message: str, *, stderr: bool = False) -> None:
    """Log ``message`` at INFO on ``logger`` (into Hydra's job log file) and print it once,
    plain, on stdout (``stderr=True``: stderr)."""
    if not any(isinstance(h, _Printer) for h in logger.handlers):
        logger.addHandler(_Printer())
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # shown as print() showed it, whatever the root's level
    # Hydra configures logging again for each job (a joblib worker runs several): check each time.
    for handler in _console_handlers(logger):
        if not isinstance(handler, _Printer) and _SAID not in handler.filters:
            handler.addFilter(_SAID)
    logger.info(message, extra={"vitnas_said": True, "vitnas_stderr": stderr})


# -- progress ------------------------------------------------------------------------------------
class _AroundBars:
    """A console handler's stream while a bar is shown: each write clears the bars, writes, and
    draws them again (``tqdm.write``)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        tqdm.write(text, file=self.stream, end="")

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:  # isatty, encoding, ...
        return getattr(self.stream, name)


def progress_mode(value: Any, key: str = "progress") -> str:
    """``auto | true | false`` (or a boolean) as ``auto``, ``true`` or ``false``; anything else
    is a :class:`UserError` naming ``key``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in PROGRESS_CHOICES:
        return value.strip().lower()
    raise UserError(
        f"{key} must be auto, true or false, got {quoted(value)}; pass {key}=auto (a bar on a "
        f"terminal only), {key}=true or {key}=false"
    )


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        return False


class Progress:
    """Progress over ``total`` steps: a tqdm bar, sparse log lines, or nothing (see the module
    docstring for ``setting``). ``enabled=False`` (another rank, nothing to do) shows nothing."""

    def __init__(
        self,
        setting: Any,
        *,
        total: int,
        desc: str,
        unit: str,
        logger: logging.Logger,
        enabled: bool = True,
        leave: bool = False,
        every_s: float | None = None,
    ) -> None:
        mode = progress_mode(setting)
        if not enabled or mode == "false":
            self.kind = "off"
        elif mode == "true" or _is_terminal():
            self.kind = "bar"
        else:
            self.kind = "log"
        self.total, self.desc, self.unit, self.logger = total, desc, unit, logger
        self.every_s = LOG_EVERY_S if every_s is None else every_s
        self.n = 0
        self.postfix: dict[str, str] = {}
        self._start = self._logged = time.monotonic()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stderr,
            disable=self.kind != "bar",
        )
        # the console handlers of ``logger`` (and above) write around the bar while it is shown
        self._wrapped: list[tuple[logging.StreamHandler, Any]] = []
        if self.kind == "bar":
            for handler in _console_handlers(logger):
                if not isinstance(handler.stream, _AroundBars):
                    self._wrapped.append((handler, handler.stream))
                    handler.setStream(_AroundBars(handler.stream))

    def update(self, n: int = 1, **postfix: str) -> None:
        """``n`` more steps done; ``postfix`` (``loss="0.52"``) is shown beside the count."""
        self.n += n
        if postfix:
            self.postfix = postfix
        if self.kind == "bar":
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(n)
        elif self.kind == "log":
            now = time.monotonic()
            if now - self._logged >= self.every_s and self.n < self.total:
                self._logged = now
                extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
                self.logger.info(
                    "%s: %s %d/%d (%.0f%%), %.0fs%s",
                    self.desc,
                    self.unit,
                    self.n,
                    self.total,
                    100 * self.n / max(self.total, 1),
                    now - self._start,
                    extra,
                )

    def update_to(self, done: int) -> None:
        """``done`` steps done in all."""
        if done > self.n:
            self.update(done - self.n)

    def close(self) -> None:
        self.bar.close()
        for handler, stream in self._wrapped:
            handler.setStream(stream)
        self._wrapped = []

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
