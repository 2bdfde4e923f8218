"""Everything this tool does with Optuna beyond its public API, in one place.

Optuna's public API has no call for some things a crash-safe, multi-process search needs: failing
a RUNNING trial whose worker was killed (the storage's ``set_trial_state_values``, as
``optuna.storages.fail_stale_trials`` does), the heartbeat retry callback of the storage, a
trial's storage id, the RDB tables (RUNNING trials that never sent a heartbeat; the trials one
run claimed), SQLite's transaction mode, and the form of a trial's constraints that
optuna-dashboard reads (:func:`set_constraints`). They live here, and
``tests/search/test_optuna_adapter.py`` pins each against the installed Optuna, so that an upgrade
that changes them fails there, loudly, instead of silently elsewhere.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

import optuna
import sqlalchemy
import sqlalchemy.event
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "CONSTRAINTS_ATTR",
    "OPTIMIZE_LOGGER",
    "claimed_trials",
    "configure_sqlite",
    "constraints_of",
    "fail_trial",
    "get_trial",
    "rdb_backend",
    "retry_callback",
    "set_constraints",
    "set_metric_names",
    "silent_trial_ids",
    "storage_of",
    "trial_id",
]


#: The logger through which ``study.optimize`` warns about a failed trial.
OPTIMIZE_LOGGER = "optuna.study._optimize"


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage (Optuna's cache wrapper around the RDB storage, for an RDB)."""
    return study._storage


def rdb_backend(study: optuna.Study) -> RDBStorage | None:
    """The RDB storage under the study's cache, or None for another kind of storage."""
    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


def trial_id(trial: optuna.trial.BaseTrial | FrozenTrial) -> int:
    """A trial's id in its storage (not its number in the study)."""
    return int(trial._trial_id)


def get_trial(study: optuna.Study, trial_id: int) -> FrozenTrial:
    """The trial with storage id ``trial_id``, as stored now (a copy)."""
    return copy.deepcopy(storage_of(study).get_trial(trial_id))


def retry_callback(study: optuna.Study) -> Callable[[optuna.Study, FrozenTrial], None] | None:
    """The storage's heartbeat callback for stale trials (it queues a retry), if heartbeats are
    on."""
    get = getattr(storage_of(study), "get_heartbeat_stale_trial_callback", None)
    return get() if get is not None else None


def fail_trial(study: optuna.Study, trial_id: int) -> FrozenTrial | None:
    """Fail the RUNNING trial ``trial_id``; the failed trial, or None when it had finished
    already (or someone else failed it first)."""
    storage = storage_of(study)
    try:
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return get_trial(study, trial_id)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass
    return None


_SILENT = sqlalchemy.text(
    """
    SELECT t.trial_id FROM trials t
    JOIN studies s ON s.study_id = t.study_id
    LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
    WHERE s.study_name = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL
      AND t.datetime_start < :before
    """
).bindparams(sqlalchemy.bindparam("before", type_=sqlalchemy.DateTime))  # as Optuna stores it


def silent_trial_ids(study: optuna.Study, before: datetime) -> list[int]:
    """Storage ids of the RUNNING trials started before ``before`` that never sent a heartbeat
    (empty when the storage is not an RDB with heartbeats)."""
    backend = rdb_backend(study)
    if backend is None or backend.heartbeat_interval is None:
        return []
    with backend.engine.connect() as connection:
        rows = connection.execute(_SILENT, {"study": study.study_name, "before": before})
        return [int(row[0]) for row in rows]


_CLAIMED = sqlalchemy.text(
    """
    SELECT t.number, t.state FROM trials t
    JOIN studies s ON s.study_id = t.study_id
    JOIN trial_user_attributes a ON a.trial_id = t.trial_id
    WHERE s.study_name = :study AND a.key = :key AND a.value_json = :value
      AND t.state IN ('COMPLETE', 'PRUNED', 'RUNNING')
    """
)


def claimed_trials(study: optuna.Study, key: str, value: Any) -> list[tuple[int, str]]:
    """``(number, state)`` of the COMPLETE, PRUNED and RUNNING trials whose user attribute
    ``key`` is ``value``, read in one query (None when the storage is not an RDB)."""
    import json

    backend = rdb_backend(study)
    if backend is None:
        return [
            (t.number, t.state.name)
            for t in study.get_trials(
                deepcopy=False,
                states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
            )
            if t.user_attrs.get(key) == value
        ]
    with backend.engine.connect() as connection:
        rows = connection.execute(
            _CLAIMED, {"study": study.study_name, "key": key, "value": json.dumps(value)}
        )
        return [(int(number), str(state)) for number, state in rows]


_UNMARKED = sqlalchemy.text(
    """
    SELECT t.number FROM trials t
    JOIN studies s ON s.study_id = t.study_id
    WHERE s.study_name = :study AND t.state = 'RUNNING' AND t.number < :before
      AND NOT EXISTS (
        SELECT 1 FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND a.key = :key
      )
    """
)


def unmarked_running(study: optuna.Study, key: str, before: int) -> list[int]:
    """Numbers of the RUNNING trials below ``before`` that have no user attribute ``key`` yet,
    read in one query (as :func:`claimed_trials`)."""
    backend = rdb_backend(study)
    if backend is None:
        return [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if t.number < before and key not in t.user_attrs
        ]
    with backend.engine.connect() as connection:
        rows = connection.execute(
            _UNMARKED, {"study": study.study_name, "key": key, "before": before}
        )
        return [int(row[0]) for row in rows]


#: The system attribute holding a trial's constraints as a list, the form Optuna 3 and 4 wrote
#: (through ``constraints_func``) and optuna-dashboard (0.21) reads to mark a trial infeasible.
#: Optuna 5 reads it too, as constraints named "0", "1", ...
CONSTRAINTS_ATTR = "constraints"
#: The user attribute naming them: ``{name: value}`` (the dashboard shows it beside the trial).
NAMED_CONSTRAINTS_ATTR = "constraints"
_NAMED_PREFIX = f"{CONSTRAINTS_ATTR}:"  # Optuna 5's ``trial.set_constraint`` keys


def _system_attrs(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
    if isinstance(trial, optuna.Trial):
        return trial.storage.get_trial_system_attrs(trial._trial_id)
    return trial.system_attrs


def set_constraints(trial: optuna.trial.BaseTrial, values: dict[str, float]) -> None:
    """Record the trial's constraints (``<= 0``: satisfied) once, in the one form that both
    Optuna 5 and optuna-dashboard read: a list under the system attribute
    :data:`CONSTRAINTS_ATTR`, in the order of ``values``; their names go to the user attribute
    :data:`NAMED_CONSTRAINTS_ATTR`. (Optuna 5's ``trial.set_constraint`` writes keys the
    dashboard ignores, so it marks no trial infeasible; writing both forms would show every
    constraint twice to Optuna's samplers.) A retried trial that inherited its constraints in
    ``set_constraint``'s form, from a run of an earlier version of this tool, keeps that form.
    Rewriting the list (a retry) is allowed."""
    values = {name: float(value) for name, value in values.items()}
    trial.set_user_attr(NAMED_CONSTRAINTS_ATTR, values)
    if any(key.startswith(_NAMED_PREFIX) for key in _system_attrs(trial)):
        return
    listed = list(values.values())
    if isinstance(trial, optuna.Trial):
        trial.storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, listed)
        trial._cached_frozen_trial.system_attrs[CONSTRAINTS_ATTR] = listed
    elif isinstance(trial, optuna.trial.FixedTrial):
        trial._system_attrs[CONSTRAINTS_ATTR] = listed
    else:
        raise TypeError(f"cannot set constraints on a {type(trial).__name__}")


def constraints_of(trial: FrozenTrial) -> dict[str, float]:
    """A finished trial's constraints by name, whichever form it stored them in (this tool's
    list with its named user attribute, or ``trial.set_constraint``'s keys)."""
    values = trial.constraints
    named = trial.user_attrs.get(NAMED_CONSTRAINTS_ATTR)
    listed = trial.system_attrs.get(CONSTRAINTS_ATTR)
    if isinstance(named, dict) and isinstance(listed, list) and len(named) == len(listed):
        return dict(zip(named, map(float, listed), strict=True))
    return {name: float(value) for name, value in values.items()}


def set_metric_names(study: optuna.Study, names: list[str]) -> None:
    """Name the study's objectives (optuna-dashboard's plots and tables show them instead of
    "Objective 0"); a study that has them already is left alone."""
    import warnings

    if study.metric_names == names:
        return
    with warnings.catch_warnings():  # marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)


def configure_sqlite(storage: RDBStorage) -> None:
    """Serialised transactions, a write-ahead log, and no fsync per commit, for SQLite.

    Optuna takes a waiting trial (an enqueued seed, a retry) by reading it as WAITING and then
    marking it RUNNING, relying on ``SELECT ... FOR UPDATE``, which SQLite ignores; and pysqlite
    starts a transaction only at the first write, so two workers could both read the trial as
    WAITING and both run it. ``BEGIN IMMEDIATE`` takes the database's write lock when the
    transaction starts, so the read and the write happen under it (SQLAlchemy's documented way:
    pysqlite's own BEGIN turned off, ours emitted instead).

    A trial writes a few dozen small rows, and fsyncing each one took more time than evaluating
    the subnet: ``synchronous=NORMAL`` in WAL mode loses nothing to an application crash; a power
    cut may lose the last trials (the file itself stays consistent).
    """

    def on_connect(connection: Any, _record: Any) -> None:
        connection.isolation_level = None  # pysqlite emits no BEGIN of its own
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    sqlalchemy.event.listen(storage.engine, "begin", on_begin)
    storage.engine.dispose()  # reconnect: the pooled connections predate the listeners
