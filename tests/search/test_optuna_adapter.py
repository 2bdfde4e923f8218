"""What search/optuna_adapter.py relies on in Optuna beyond its public API, pinned against the
installed version: an upgrade that changes any of it fails here."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from search.optuna_adapter import (
    CONSTRAINTS_ATTR,
    OPTIMIZE_LOGGER,
    claimed_trials,
    constraints_of,
    fail_trial,
    get_trial,
    rdb_backend,
    retry_callback,
    set_constraints,
    set_metric_names,
    silent_trial_ids,
    storage_of,
    trial_id,
)
from search.storage import default_storage_url, open_storage


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    storage = open_storage(default_storage_url(tmp_path), heartbeat_interval=60, grace_period=120)
    return optuna.create_study(study_name="pinned", storage=storage)


def test_storage_and_trial_ids(study: optuna.Study) -> None:
    assert isinstance(rdb_backend(study), RDBStorage)
    trial = study.ask()
    stored = get_trial(study, trial_id(trial))
    assert stored.number == trial.number and stored.state == TrialState.RUNNING
    frozen = study.get_trials()[0]
    assert trial_id(frozen) == trial_id(trial)
    assert rdb_backend(optuna.create_study()) is None  # in-memory storage


def test_fail_trial_and_retry(study: optuna.Study, tmp_path: Path) -> None:
    trial = study.ask()
    trial.suggest_int("x", 0, 9)
    failed = fail_trial(study, trial_id(trial))
    assert failed is not None and failed.state == TrialState.FAIL
    assert fail_trial(study, trial_id(trial)) is None  # finished already: left alone
    retry = retry_callback(study)
    assert retry is not None
    retry(study, failed)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["failed_trial"] == trial.number
    assert waiting[0].params == failed.params
    (tmp_path / "other").mkdir()
    no_heartbeat = open_storage(default_storage_url(tmp_path / "other"), heartbeat_interval=None)
    assert retry_callback(optuna.create_study(storage=no_heartbeat)) is None


def test_silent_trials_are_those_without_a_heartbeat(study: optuna.Study) -> None:
    silent, beating = study.ask(), study.ask()
    storage_of(study).record_heartbeat(trial_id(beating))  # what Optuna's heartbeat thread does
    later = datetime.now() + timedelta(seconds=5)
    assert silent_trial_ids(study, later) == [trial_id(silent)]
    assert silent_trial_ids(study, datetime.now() - timedelta(hours=1)) == []


def test_claimed_trials_by_user_attribute(study: optuna.Study) -> None:
    states = [TrialState.COMPLETE, TrialState.RUNNING, TrialState.FAIL, TrialState.COMPLETE]
    for i, state in enumerate(states):
        trial = study.ask()
        trial.set_user_attr("run", "a" if i < 3 else "b")
        if state != TrialState.RUNNING:
            study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    assert sorted(claimed_trials(study, "run", "a")) == [(0, "COMPLETE"), (1, "RUNNING")]
    memory = optuna.create_study()  # not an RDB: the same answer from the trials themselves
    for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.FAIL)):
        memory.add_trial(trial)
    expected = [(t.number, "COMPLETE") for t in memory.trials if t.user_attrs["run"] == "b"]
    assert claimed_trials(memory, "run", "b") == expected and len(expected) == 1


def test_sqlite_is_serialised_and_write_ahead(study: optuna.Study) -> None:
    backend = rdb_backend(study)
    assert backend is not None
    with backend.engine.connect() as connection:
        mode = connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar()
    assert str(mode).lower() == "wal"


def test_failed_trials_are_logged_through_the_optimize_logger() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(OPTIMIZE_LOGGER)
    handler = Keep()
    logger.addHandler(handler)
    try:

        def broken(trial: optuna.Trial) -> float:
            raise ValueError("nope")

        optuna.create_study().optimize(broken, n_trials=1, catch=(ValueError,))
    finally:
        logger.removeHandler(handler)
    assert any("failed" in str(r.msg) for r in records)


def test_constraints_in_the_form_optuna_and_the_dashboard_both_read(study: optuna.Study) -> None:
    """One list under the system attribute ``constraints``: Optuna 5 reads it (as "0", "1", ...)
    for its samplers' feasibility, optuna-dashboard's serializer reads it as it is."""
    from optuna_dashboard._serializer import serialize_frozen_trial

    for values in ({"flops_max": 0.5, "params_min": -0.2}, {"flops_max": -0.1, "params_min": -1}):
        trial = study.ask()
        set_constraints(trial, values)
        assert trial.constraints == {"0": values["flops_max"], "1": values["params_min"]}
        study.tell(trial, 0.0)
    infeasible, feasible = study.get_trials()
    assert infeasible.system_attrs[CONSTRAINTS_ATTR] == [0.5, -0.2]
    assert constraints_of(infeasible) == {"flops_max": 0.5, "params_min": -0.2}
    assert constraints_of(feasible) == {"flops_max": -0.1, "params_min": -1.0}
    assert study.best_trial.number == feasible.number  # Optuna ranks by the list's feasibility
    served = serialize_frozen_trial(study._study_id, infeasible, {})
    assert served["constraints"] == [0.5, -0.2]
    # Rewritten by a retry (the same trial again): the list is replaced, not appended to.
    again = study.ask()
    set_constraints(again, {"flops_max": 0.5})
    set_constraints(again, {"flops_max": 0.5})
    assert again.constraints == {"0": 0.5}
    # A FixedTrial (objective checks) takes them too.
    fixed = optuna.trial.FixedTrial({})
    set_constraints(fixed, {"flops_max": 0.5})
    assert fixed.constraints == {"0": 0.5}


def test_a_retry_of_an_older_runs_named_constraints_keeps_their_form(study: optuna.Study) -> None:
    old = study.ask()
    old.set_constraint("flops_max", 0.3)  # as this tool wrote them before
    failed = fail_trial(study, trial_id(old))
    retry = retry_callback(study)
    assert failed is not None and retry is not None
    retry(study, failed)
    trial = study.ask()  # the retry, inheriting the named constraint
    assert trial.constraints == {"flops_max": 0.3}
    set_constraints(trial, {"flops_max": 0.3})
    assert trial.constraints == {"flops_max": 0.3}  # not shown twice to the samplers
    study.tell(trial, 0.0)
    assert constraints_of(study.trials[-1]) == {"flops_max": 0.3}


def test_metric_names(study: optuna.Study) -> None:
    set_metric_names(study, ["val_acc"])
    set_metric_names(study, ["val_acc"])  # again: left alone
    assert optuna.load_study(study_name="pinned", storage=study._storage).metric_names == [
        "val_acc"
    ]
