"""Trials whose worker is gone: fail them and queue them again with the same subnet.

Optuna's heartbeats fail a RUNNING trial whose last heartbeat is older than the grace period,
and :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues a copy. Two cases escape
that rule and are handled here:

- the parent process of ``search.n_workers > 1`` sees a worker die: its trials are failed at
  once (:func:`fail_and_retry`), without waiting for the grace period;
- a worker killed between creating a trial and its first heartbeat leaves a RUNNING trial with no
  heartbeat at all, which Optuna never fails: :func:`fail_silent_trials` fails those once they
  are older than the grace period;
- a trial whose worker ran on this machine and is gone (its whole search was killed) is failed
  by the next run at once (:func:`fail_dead_workers`), not a grace period later;
- a trial interrupted by Ctrl-C or SIGTERM is failed by Optuna and queued again here
  (:func:`settle_interrupted`), as a killed one would be.
"""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import sqlalchemy
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

__all__ = [
    "fail_and_retry",
    "fail_dead_workers",
    "fail_silent_trials",
    "retry_callback",
    "settle_interrupted",
]

_SILENT = sqlalchemy.text(
    """
    SELECT t.trial_id FROM trials t
    JOIN studies s ON s.study_id = t.study_id
    LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id
    WHERE s.study_name = :study AND t.state = 'RUNNING' AND h.trial_id IS NULL
      AND t.datetime_start < :before
    """
).bindparams(sqlalchemy.bindparam("before", type_=sqlalchemy.DateTime))  # as Optuna stores it


def retry_callback(study: optuna.Study) -> Callable[[optuna.Study, FrozenTrial], None] | None:
    """The storage's callback for stale trials (it queues a retry), if heartbeats are on."""
    get = getattr(study._storage, "get_heartbeat_stale_trial_callback", None)
    return get() if get is not None else None


def fail_and_retry(study: optuna.Study, trial_ids: Iterable[int]) -> list[int]:
    """Fail the RUNNING trials ``trial_ids`` (storage ids) and queue a copy of each that had
    chosen a subnet; returns the numbers of the trials failed here (not by someone else)."""
    storage = study._storage  # as optuna.storages.fail_stale_trials does
    failed = []
    for trial_id in trial_ids:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                failed.append(copy.deepcopy(storage.get_trial(trial_id)))
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # finished meanwhile, or a heartbeat check elsewhere failed it (and retried it)
    retry = retry_callback(study)
    for trial in failed:
        if retry is not None and trial.params:  # nothing to retry without a subnet
            retry(study, trial)
    return [t.number for t in failed]


def fail_silent_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Fail (and retry) the RUNNING trials that never sent a heartbeat and started more than
    ``grace_period`` seconds ago: their worker died right after creating them."""
    storage = getattr(study._storage, "_backend", study._storage)  # under Optuna's cache
    if not isinstance(storage, RDBStorage) or storage.heartbeat_interval is None:
        return []
    before = datetime.now() - timedelta(seconds=grace_period)
    with storage.engine.connect() as connection:
        rows = connection.execute(_SILENT, {"study": study.study_name, "before": before})
        trial_ids = [int(row[0]) for row in rows]
    return fail_and_retry(study, trial_ids)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie does not count)."""
    if pid == os.getpid():
        return False  # the pid of a dead process reused by this one: this one runs no trial yet
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def fail_dead_workers(study: optuna.Study) -> list[int]:
    """Fail (and retry) the RUNNING trials whose worker ran on this machine and is gone; returns
    their numbers. (Trials of other machines wait for their heartbeats to go stale.)"""
    host = socket.gethostname()
    dead = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        name, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(trial._trial_id)
    return fail_and_retry(study, dead)


def settle_interrupted(study: optuna.Study, trial_id: int | None) -> None:
    """After Ctrl-C or SIGTERM stopped a worker in trial ``trial_id``: Optuna failed it (or,
    stopped outside the objective, left it RUNNING: fail it now); queue a copy with its subnet."""
    if trial_id is None:
        return
    storage = study._storage
    trial = storage.get_trial(trial_id)
    if trial.state == TrialState.RUNNING:
        fail_and_retry(study, [trial_id])
    elif trial.state == TrialState.FAIL and trial.params:
        retry = retry_callback(study)
        if retry is not None:
            retry(study, copy.deepcopy(trial))
