"""The README's parallel sweeps: Hydra's joblib and submitit launchers (the ``launchers`` extra),
and the error a user without the plugin sees."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hydra.errors import MissingConfigException

from supernet.common.cli import _hydra_message

Cli = Callable[..., subprocess.CompletedProcess[str]]
ROOT = Path(__file__).resolve().parents[2]


def _check_jobs(sweep: Path, budgets: dict[str, str]) -> None:
    """Every job of the sweep wrote its tables and a log holding the search's summary."""
    for job, flops in budgets.items():
        run = sweep / job
        trials = pd.read_csv(run / "trials.csv")
        assert len(trials) == 3, run
        assert (run / "pareto.html").is_file() and (run / "study.yaml").is_file()
        assert f"flops={flops}" in (run / ".hydra" / "overrides.yaml").read_text().replace(
            "budget.", ""
        )
        log = (run / "search.log").read_text()
        assert "3 trials in the study" in log and f"tables and plots in {run}" in log, log


@pytest.mark.slow
def test_joblib_sweep_runs_two_jobs_in_parallel(
    cli: Cli, trained_checkpoint: Path, tmp_path: Path
) -> None:
    sweep = tmp_path / "sweep"
    result = cli(
        "search",
        "-m",
        f"supernet={trained_checkpoint}",
        "budget.flops=150k,300k",
        "search.n_trials=3",
        "search.plots_png=false",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in result.stdout + result.stderr
    _check_jobs(sweep, {"0": "150k", "1": "300k"})
    # No progress bar off a terminal (tqdm draws "NN%|"; text mode turns its \r into \n).
    assert "%|" not in result.stderr + result.stdout


@pytest.mark.slow
def test_submitit_local_sweep(cli: Cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    result = cli(
        "search",
        "-m",
        f"supernet={trained_checkpoint}",
        "budget.flops=150k,300k",
        "search.n_trials=3",
        "search.plots_png=false",
        f"hydra.sweep.dir={sweep}",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _check_jobs(sweep, {"0": "150k", "1": "300k"})
    outs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len(outs) == 2 and all("tables and plots in" in p.read_text() for p in outs)


def test_slurm_launcher_composes(cli: Cli, tmp_path: Path) -> None:
    """The README's SLURM options are the plugin's (composing checks every key)."""
    result = cli(
        "search",
        "supernet=runs/x/supernet.pt",
        "hydra/launcher=submitit_slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=60",
        "hydra.launcher.gpus_per_node=1",
        "hydra.launcher.cpus_per_task=8",
        "hydra.launcher.mem_gb=32",
        f"hydra.sweep.dir={tmp_path}",
        "--cfg",
        "hydra",
        "--package",
        "hydra.launcher",
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "partition: gpu" in result.stdout and "gpus_per_node: 1" in result.stdout


def test_missing_plugin_names_the_extra() -> None:
    exc = MissingConfigException(
        "Could not find 'hydra/launcher/joblib'",
        missing_cfg_file="hydra/launcher/joblib",
        options=["basic"],
    )
    assert _hydra_message(exc) == (
        "no Hydra launcher 'joblib': its plugin (hydra-joblib-launcher) is not installed; "
        "pip install 'vitnas[launchers]' (the launchers installed now: basic)"
    )
    typo = MissingConfigException(
        "x", missing_cfg_file="hydra/launcher/jobllib", options=["basic", "joblib"]
    )
    assert _hydra_message(typo) == (
        "no config hydra/launcher/jobllib; the choices are basic, joblib"
    )


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_slurm"])
def test_missing_plugin_end_to_end(launcher: str, tmp_path: Path) -> None:
    """Without the plugins (hidden from Hydra's plugin scan), the sweep fails in one line that
    says which extra to install."""
    script = textwrap.dedent(
        f"""
        import pkgutil, sys
        PLUGINS = ("hydra_plugins.hydra_joblib", "hydra_plugins.hydra_submitit")
        walk = pkgutil.walk_packages
        def hidden(*args, **kwargs):
            for info in walk(*args, **kwargs):
                if not info.name.startswith(PLUGINS):
                    yield info
        pkgutil.walk_packages = hidden
        sys.argv = ["search", "-m", "supernet=x.pt", "hydra/launcher={launcher}",
                    "hydra.sweep.dir={tmp_path}"]
        from search.__main__ import cli
        cli()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: no Hydra launcher '{launcher}'")
    assert lines[0].endswith(
        "is not installed; pip install 'vitnas[launchers]' (the launchers installed now: basic)"
    )
