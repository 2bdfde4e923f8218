"""Progress within an epoch (``train.progress``): a bar on a terminal, sparse log lines in a log
file or a pipe, nothing when switched off; and the run's log file holds the per-epoch lines."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from supernet.common import console
from supernet.data import DataConfig
from supernet.train import ConfigError, train_subnet, train_supernet
from supernet.train.config import TrainConfig
from supernet.train.resume import check_same_settings

from .conftest import Factory

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.train_subset=64", "train.epochs=2", "train.batch_size=16", "threads=1"]


def _log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "supernet.train.loop"]


def test_auto_off_a_terminal_logs_sparse_lines_and_no_bar(
    tiny_run: Factory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "LOG_EVERY_S", 0.0)  # a line at every step, to see them
    caplog.set_level(logging.INFO)
    train_supernet(tiny_run(epochs=1, progress="auto"))  # capsys: stderr is not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err and "batch/s" not in err and "it/s" not in err
    steps = [line for line in _log_lines(caplog) if line.startswith("epoch 1/1: ")]
    # 128 images, batch 32: 4 steps; the last one is the epoch's own line.
    assert [line.split(" (")[0] for line in steps] == [f"epoch 1/1: batch {i}/4" for i in (1, 2, 3)]
    assert "%), " in steps[0] and ", loss " in steps[0] and ", img_s " in steps[0]


def test_auto_logs_nothing_within_a_short_epoch(
    tiny_run: Factory, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    train_supernet(tiny_run(epochs=1))  # the default: auto; a line a minute at most
    assert "\r" not in capsys.readouterr().err
    assert not [line for line in _log_lines(caplog) if line.startswith("epoch 1/1: ")]


def test_true_shows_the_bar_and_false_shows_nothing(
    tiny_run: Factory,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console, "LOG_EVERY_S", 0.0)
    caplog.set_level(logging.INFO)
    train_supernet(tiny_run("bar", epochs=1, progress=True))
    err = capsys.readouterr().err
    assert "\repoch 1/1:" in err and "/4 [" in err
    caplog.clear()
    train_supernet(tiny_run("off", epochs=1, progress="false"))
    assert "\r" not in capsys.readouterr().err
    assert not [line for line in _log_lines(caplog) if line.startswith("epoch 1/1: ")]


def test_progress_values() -> None:
    for value, mode in ((True, "true"), (False, "false"), ("auto", "auto"), ("FALSE", "false")):
        assert console.progress_mode(value) == mode
    with pytest.raises(ConfigError) as bad:
        TrainConfig.from_dict({"progress": "sometimes"})
    assert str(bad.value).startswith(
        "train.progress must be auto, true or false, got 'sometimes'; pass values in those ranges"
    )


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "supernet.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_log_file_holds_the_epoch_lines_and_no_bar(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _train(f"hydra.run.dir={run}", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    log = (run / "train.log").read_text()
    for line in ("training a digits supernet", "epoch 1/2  loss", "epoch 2/2  loss", "saved "):
        assert line in log, log
        assert out.stdout.count(line) == 1, out.stdout  # on the console once
    # No bar (tqdm draws "NN%|"; text mode turns its \r into \n) and no \r in the log file.
    assert "%|" not in out.stderr + out.stdout + log
    assert b"\r" not in (run / "train.log").read_bytes()
    bad = _train(f"hydra.run.dir={tmp_path / 'bad'}", "train.progress=sometimes", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: train.progress must be auto, true or false, got 'sometimes'; pass values in "
        "those ranges (`--help` lists the options and their defaults)"
    ]


def test_resume_ignores_the_progress_setting() -> None:
    """Progress changes what is shown, not what is trained: a resume may change it."""
    train = TrainConfig.from_dict({"epochs": 2})
    payload = {
        "data": {"name": "digits"},
        "train": {**train.to_dict(), "progress": "true"},
        "seed": 0,
    }
    data = DataConfig.from_dict({"name": "digits"})
    check_same_settings(payload, Path("x.pt"), data=data, train=train, seed=0)
    payload["train"]["epochs"] = 3
    with pytest.raises(ConfigError, match=r"train.epochs: checkpoint 3, requested 2"):
        check_same_settings(payload, Path("x.pt"), data=data, train=train, seed=0)


@pytest.mark.parametrize("progress", ["true", "auto"])
def test_subnet_training_shows_the_same_progress(
    tiny_run: Factory, capsys: pytest.CaptureFixture[str], progress: str
) -> None:
    """mode=scratch (and finetune) train through the same loop: the bar when asked for, and
    none off a terminal."""
    config = tiny_run("scratch", epochs=1, progress=progress)
    config.update(mode="scratch", subnet="smallest")
    train_subnet(config)
    err = capsys.readouterr().err
    assert ("\repoch 1/1:" in err) == (progress == "true"), err[-500:]
