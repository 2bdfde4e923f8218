"""A worker killed in the middle of a trial: its trial is retried with the same subnet."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import DictConfig
from optuna.trial import TrialState

from search.runner import run_search

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_killed_worker_trial_is_retried(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    overrides = [
        f"supernet={random_checkpoint}",
        "search.sampler=random",
        "search.heartbeat_interval=1",
        "search.grace_period=2",
        "search.progress=false",
        "search.plots_png=false",
    ]
    # A worker that is SIGKILLed as soon as it starts evaluating a subnet (the first trial is
    # the enqueued smallest subnet, feasible without a budget).
    script = textwrap.dedent(
        f"""
        import os, signal
        from hydra import compose, initialize_config_dir
        from search.objective import Objective
        from search.runner import run_search

        def die(self, subnet):
            os.kill(os.getpid(), signal.SIGKILL)

        Objective.evaluate = die
        with initialize_config_dir(config_dir={str(ROOT / "conf")!r}, version_base="1.3"):
            cfg = compose(config_name="search", overrides={[*overrides, "search.n_trials=3"]!r})
        run_search(cfg, {str(tmp_path)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, timeout=300
    )
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    manifest = yaml.safe_load((tmp_path / "study.yaml").read_text())
    study = optuna.load_study(study_name=manifest["study_name"], storage=manifest["storage"])
    assert study.trials[0].state == TrialState.RUNNING  # left behind by the dead worker
    lost_params = study.trials[0].params

    time.sleep(3.5)  # past the grace period: the trial's heartbeat is stale
    result = run_search(search_config(*overrides, "search.n_trials=3"), tmp_path)

    study = optuna.load_study(study_name=manifest["study_name"], storage=manifest["storage"])
    assert study.trials[0].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.params == lost_params
    assert retry.user_attrs["val_acc"] is not None
    table = result.trials.set_index("number")
    assert table.loc[retry.number, "retried_from"] == 0
    assert table.loc[0, "state"] == "FAIL"
