"""``python -m search`` writes its report lines to Hydra's job log file (``search.log``) as
well as to the terminal, where each shows once; the progress bar stays off the log file."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.mark.slow
def test_search_log_holds_the_summary(cli: Cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli(
        "search",
        f"supernet={trained_checkpoint}",
        "budget.flops=300k",
        "search.n_trials=4",
        "search.plots_png=false",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    log = (run / "search.log").read_text()
    header = ("study 'digits_small/val_acc/flops<=300k/", "space digits_small, budget: flops")
    summary = ("4 trials in the study: ", "best feasible subnets", f"tables and plots in {run}")
    for line in header:
        assert line in log and result.stderr.count(line) == 1, result.stderr
        assert line not in result.stdout
    for line in summary:
        assert line in log and result.stdout.count(line) == 1, result.stdout
    # The terminal shows the plain text (no timestamps); the log file the same, timestamped.
    assert "[search.runner][INFO]" in log and "[search.runner]" not in result.stdout
    # auto: no bar off a terminal (tqdm draws "NN%|"), and never a bar in the log file.
    assert "%|" not in result.stderr + result.stdout
    assert b"\r" not in (run / "search.log").read_bytes() and "%|" not in log


@pytest.mark.slow
def test_progress_true_bar_goes_to_stderr_not_the_log(
    cli: Cli, trained_checkpoint: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    result = cli(
        "search",
        f"supernet={trained_checkpoint}",
        "search.n_trials=3",
        "search.progress=true",
        "search.plots_png=false",
        f"hydra.run.dir={run}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "search: " in result.stderr and "%|" in result.stderr and "/3 [" in result.stderr
    log = (run / "search.log").read_text()
    assert "%|" not in log and "3 trials in the study" in log
    assert b"\r" not in (run / "search.log").read_bytes()
