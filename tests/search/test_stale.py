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


def test_a_killed_workers_trials_are_told_apart_by_whether_they_chose_a_subnet(
    tmp_path: Path,
) -> None:
    """The parent's note says 'queued again with the same subnet' only of the trials that had
    one; a trial killed before choosing is failed and not queued (it said so of both)."""
    from datetime import datetime, timedelta
    from types import SimpleNamespace

    from search.objective import worker_name
    from search.workers import _reap

    study, _ = _study(tmp_path)
    pid = 999_999_999  # no such process: the worker is gone
    worker = SimpleNamespace(process=SimpleNamespace(pid=pid), started=datetime.now())
    worker.started -= timedelta(seconds=5)
    done, chosen, unchosen, other = (study.ask() for _ in range(4))
    for trial in (done, chosen, unchosen):
        trial.set_user_attr("worker", worker_name(pid))
    other.set_user_attr("worker", worker_name(pid + 1))  # another worker's: left alone
    for trial in (done, chosen, other):
        trial.suggest_int("depth", 1, 4)
    study.tell(done, 0.5)
    assert _reap(study, worker) == (1, [chosen.number], [unchosen.number])  # type: ignore[arg-type]
    states = {t.number: t.state for t in study.get_trials()}
    assert states[chosen.number] == states[unchosen.number] == TrialState.FAIL
    assert states[other.number] == TrialState.RUNNING
    retries = [t.system_attrs.get("failed_trial") for t in study.get_trials()]
    assert [r for r in retries if r is not None] == [chosen.number]
