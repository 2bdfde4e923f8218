"""The ``python -m supernet.train`` entry point, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from supernet.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[3]
TINY = ["data.train_subset=64", "train.epochs=1", "train.batch_size=32"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "supernet.train", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_trains_and_writes_the_run_directory(tmp_path: Path) -> None:
    out = _run(f"hydra.run.dir={tmp_path / 'run'}", "train=uniform", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {".hydra", "metrics.csv", "supernet.pt", "train.log"}
    payload = load_checkpoint(run / "supernet.pt")
    assert payload["train"]["strategy"] == "uniform" and payload["epoch"] == 1
    assert payload["data"]["train_subset"] == 64
    assert "val acc smallest" in (run / "train.log").read_text()
    # Run again into the same directory: refused, nothing overwritten.
    before = (run / "supernet.pt").read_bytes()
    again = _run(f"hydra.run.dir={run}", "train=uniform", *TINY, cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.strip().startswith("error: ")
    assert "already exists; pass resume=true" in again.stderr
    assert (run / "supernet.pt").read_bytes() == before


def test_user_errors_are_one_line_unless_debug(tmp_path: Path) -> None:
    out = _run("train.epochs=-1", cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines == [
        "error: train.epochs must be an integer ≥ 1, got -1; pass values in those ranges "
        "(`--help` lists the options and their defaults)"
    ], out.stderr
    debug = _run("train.epochs=-1", "debug=true", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    missing = _run("data=imagefolder", f"data.root={tmp_path / 'images'}", cwd=tmp_path)
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr.startswith("error: ImageFolder data needs ")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_help_shows_the_defaults_a_run_gets(tmp_path: Path) -> None:
    """--help lists each option with the value a run without that override gets: the presets'
    values (digits' crop padding 1), the chosen preset of a group (space=digits), and the
    command line's own overrides."""
    out = _run("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split() == ["space=digits", *line.split()[1:]] for line in lines)
    assert any(line.strip().startswith("data.augment.crop_padding=1 ") for line in lines)
    assert not any(line.strip().startswith("space=null") for line in lines)
    chosen = _run("space=swin_digits", "train.epochs=7", "--help", cwd=tmp_path)
    assert any(line.strip().startswith("space=swin_digits ") for line in chosen.stdout.splitlines())
    assert any(line.strip().startswith("train.epochs=7 ") for line in chosen.stdout.splitlines())
