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


def test_worker_survives_its_trial_failed_by_another_process(
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a loaded machine another worker's heartbeat check can fail a trial that is still being
    evaluated; Optuna then refuses the result ('Cannot tell a FAIL trial'). The worker must log
    it and go on (the retry evaluates the subnet again), not crash and lose its other trials."""
    from search.objective import Objective
    from search.stale import fail_and_retry
    from search.storage import open_storage

    evaluate = Objective.evaluate
    failed: list[int] = []

    def evaluate_while_failed_elsewhere(self: Objective, subnet: object) -> float:
        if not failed:  # the first evaluation: a second process fails the trial meanwhile
            url = f"sqlite:///{tmp_path / 'study.db'}"
            (name,) = optuna.get_all_study_names(url)
            storage = open_storage(url, heartbeat_interval=60, grace_period=120, max_retry=3)
            other = optuna.load_study(study_name=name, storage=storage)
            running = [t for t in other.trials if t.state == TrialState.RUNNING]
            assert len(running) == 1
            failed.extend(fail_and_retry(other, [running[0]._trial_id]))
        return evaluate(self, subnet)  # type: ignore[arg-type]

    monkeypatch.setattr(Objective, "evaluate", evaluate_while_failed_elsewhere)
    result = run_search(
        search_config(
            f"supernet={random_checkpoint}", "search.sampler=random", "search.n_trials=4"
        ),
        tmp_path,
    )
    assert len(failed) == 1
    study = optuna.load_study(
        study_name=yaml.safe_load((tmp_path / "study.yaml").read_text())["study_name"],
        storage=f"sqlite:///{tmp_path / 'study.db'}",
    )
    assert study.trials[0].state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == study.trials[0].params
    assert "was failed by another worker's heartbeat check" in caplog.text
    assert "Traceback" not in caplog.text  # one line, not Optuna's traceback
    # The worker went on: the run has its 4 trials, the failed one and 3 evaluated after it.
    assert len(study.trials) == 4
    assert [t.state for t in study.trials[1:]] == [TrialState.COMPLETE] * 3
    assert (result.trials["state"] == "COMPLETE").sum() == 3


def test_an_error_of_the_objective_itself_is_not_taken_for_a_trial_failed_elsewhere(
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Optuna records the failure of an objective that raises, then re-raises it: the trial is
    FAIL by the worker itself, and the error must reach the user, not be logged away."""
    from search.objective import Objective

    def broken(self: Objective, subnet: object) -> float:
        raise ValueError("a bug in the objective")

    monkeypatch.setattr(Objective, "evaluate", broken)
    with pytest.raises(ValueError, match="a bug in the objective"):
        run_search(
            search_config(
                f"supernet={random_checkpoint}", "search.sampler=random", "search.n_trials=2"
            ),
            tmp_path,
        )
