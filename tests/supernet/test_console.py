"""supernet.common.console: report lines through logging, printed once; progress modes."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from supernet.common import console
from supernet.common.errors import UserError


@pytest.fixture
def hydra_like_logging(tmp_path: Path) -> Iterator[tuple[Path, io.StringIO]]:
    """Root handlers as Hydra's job logging sets them: a timestamped console and a file."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    fmt = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    terminal = io.StringIO()
    console_handler = logging.StreamHandler(terminal)
    file_handler = logging.FileHandler(tmp_path / "job.log")
    for handler in (console_handler, file_handler):
        handler.setFormatter(fmt)
    root.handlers = [console_handler, file_handler]
    root.setLevel(logging.INFO)
    yield tmp_path / "job.log", terminal
    file_handler.close()
    root.handlers, root.level = saved[0], saved[1]


def test_say_logs_to_the_file_and_prints_once(
    hydra_like_logging: tuple[Path, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    log_path, terminal = hydra_like_logging
    logger = logging.getLogger("vitnas.test.say")
    console.say(logger, "summary line\nsecond line")
    console.say(logger, "a note", stderr=True)
    logging.getLogger("vitnas.test.other").info("an ordinary record")
    out, err = capsys.readouterr()
    assert out == "summary line\nsecond line\n"
    # The note once, plain; the ordinary record through the console handler as before.
    assert err == "a note\n"
    # Hydra's console handler skips them; an ordinary record goes through it as before.
    assert terminal.getvalue().endswith("[vitnas.test.other][INFO] - an ordinary record\n")
    assert "summary" not in terminal.getvalue() and "note" not in terminal.getvalue()
    log = log_path.read_text()
    assert "[vitnas.test.say][INFO] - summary line\nsecond line\n" in log
    assert "[vitnas.test.say][INFO] - a note" in log and "an ordinary record" in log


def test_say_without_logging_configured_prints(capsys: pytest.CaptureFixture[str]) -> None:
    console.say(logging.getLogger("vitnas.test.plain"), "hello")
    console.say(logging.getLogger("vitnas.test.plain"), "note", stderr=True)
    assert capsys.readouterr() == ("hello\n", "note\n")


def test_progress_modes(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("vitnas.test.progress")
    for setting, kind in (("auto", "log"), (True, "bar"), ("false", "off")):
        with console.Progress(
            setting, total=3, desc="search", unit="trial", logger=logger, every_s=0
        ) as bar:
            assert bar.kind == kind
            bar.update_to(2)
            bar.update_to(3)
    err = capsys.readouterr().err
    assert err.startswith("\rsearch:") and "/3 [" in err  # the bar, from setting=True only
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == ["search: trial 2/3"]
    off = console.Progress("true", total=3, desc="x", unit="y", logger=logger, enabled=False)
    assert off.kind == "off"
    with pytest.raises(UserError, match=r"^search.progress must be auto, true or false, got 2; "):
        console.progress_mode(2, "search.progress")


def test_log_lines_and_report_lines_are_not_glued_to_a_bar(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a terminal the bar and the log records share the screen: a record written while the bar
    is shown starts on a cleared line (not after the bar's text), and the bar is drawn again."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    handler = logging.StreamHandler(sys.stderr)  # the captured stderr, where the bar goes too
    root.handlers, root.level = [handler], logging.INFO
    logger = logging.getLogger("vitnas.test.glued")
    try:
        with console.Progress(True, total=2, desc="rank", unit="run", logger=logger) as bar:
            assert isinstance(handler.stream, console._AroundBars)
            bar.update(1)
            logger.info("scratch D64: val 0.80")
            console.say(logger, "a report line", stderr=True)
            bar.update(1)
        assert handler.stream is sys.stderr  # given back when the bar closes
    finally:
        root.handlers, root.level = saved
    err = capsys.readouterr().err
    for line in ("scratch D64: val 0.80\n", "a report line\n"):
        before, after = err.split(line)
        assert before.endswith("\r"), repr(before[-40:])  # the bar was cleared first
        assert "1/2" in after  # and drawn again
