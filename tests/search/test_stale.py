"""Trials whose worker is gone are failed and queued again, even those Optuna never fails."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.stale import fail_and_retry, fail_silent_trials
from search.storage import default_storage_url, open_storage

# Trials made with study.ask(), as a worker killed at the wrong moment leaves them.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")


def _study(tmp_path: Path) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    storage = open_storage(default_storage_url(tmp_path), heartbeat_interval=1, grace_period=1)
    return optuna.create_study(storage=storage, study_name="s"), storage


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path: Path) -> None:
    study, storage = _study(tmp_path)
    silent = study.ask()  # RUNNING without a heartbeat: its worker died right after creating it
    silent.suggest_int("depth", 1, 4)
    empty = study.ask()  # died before choosing anything
    beating = study.ask()  # alive: its heartbeat thread is running
    storage.record_heartbeat(beating._trial_id)
    assert fail_silent_trials(study, grace_period=3600) == []  # younger than the grace period
    assert fail_silent_trials(study, grace_period=0) == [silent.number, empty.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[silent.number] == states[empty.number] == TrialState.FAIL
    assert states[beating.number] == TrialState.RUNNING  # Optuna's heartbeat rule covers it
    retries = [t for t in study.get_trials() if "failed_trial" in t.system_attrs]
    assert len(retries) == 1  # nothing to retry of a trial that chose no subnet
    assert retries[0].system_attrs["failed_trial"] == silent.number
    assert retries[0].state == TrialState.WAITING and retries[0].params == silent.params
    assert fail_silent_trials(study, grace_period=0) == []  # each trial once


def test_fail_and_retry_leaves_finished_trials_alone(tmp_path: Path) -> None:
    study, _ = _study(tmp_path)
    done = study.ask()
    done.suggest_int("depth", 1, 4)
    study.tell(done, 0.5)
    running = study.ask()
    running.suggest_int("depth", 1, 4)
    assert fail_and_retry(study, [done._trial_id, running._trial_id]) == [running.number]
    assert study.get_trials()[done.number].state == TrialState.COMPLETE
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1
