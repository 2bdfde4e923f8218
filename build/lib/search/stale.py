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

import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState

from .optuna_adapter import (
    fail_trial,
    get_trial,
    retry_callback,
    silent_trial_ids,
    trial_id,
)

__all__ = [
    "fail_and_retry",
    "fail_dead_workers",
    "fail_silent_trials",
    "settle_interrupted",
]


def fail_and_retry(study: optuna.Study, trial_ids: Iterable[int]) -> list[int]:
    """Fail the RUNNING trials ``trial_ids`` (storage ids) and queue a copy of each that had
    chosen a subnet; returns the numbers of the trials failed here (not by someone else: one
    that finished meanwhile, or that a heartbeat check elsewhere failed and retried, is left)."""
    failed = [t for t in (fail_trial(study, i) for i in trial_ids) if t is not None]
    retry = retry_callback(study)
    for trial in failed:
        if retry is not None and trial.params:  # nothing to retry without a subnet
            retry(study, trial)
    return [t.number for t in failed]


def fail_silent_trials(study: optuna.Study, grace_period: float) -> list[int]:
    """Fail (and retry) the RUNNING trials that never sent a heartbeat and started more than
    ``grace_period`` seconds ago: their worker died right after creating them."""
    before = datetime.now() - timedelta(seconds=grace_period)
    return fail_and_retry(study, silent_trial_ids(study, before))


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
            dead.append(trial_id(trial))
    return fail_and_retry(study, dead)


def settle_interrupted(study: optuna.Study, stopped: int | None) -> None:
    """After Ctrl-C or SIGTERM stopped a worker in the trial with storage id ``stopped``: Optuna
    failed it (or, stopped outside the objective, left it RUNNING: fail it now); queue a copy
    with its subnet."""
    if stopped is None:
        return
    trial = get_trial(study, stopped)
    if trial.state == TrialState.RUNNING:
        fail_and_retry(study, [stopped])
    elif trial.state == TrialState.FAIL and trial.params:
        retry = retry_callback(study)
        if retry is not None:
            retry(study, trial)
