"""A search run killed before its end is finished, not repeated, by the same command.

Each run of ``python -m search`` records in its run directory's manifest (``study.yaml``) a run
id, the ``n_trials`` it asked for and whether it finished; its trials carry the run id (user
attribute ``search_run``). A run that ends normally (all trials done, or ``search.timeout``) is
finished, and the same command run again adds ``n_trials`` more trials to the study. A run that
was killed (``kill -9``, a lost machine), interrupted (Ctrl-C) or lost a worker is not: the same
command in the same run directory continues it and runs only the trials it still owed, so the
run ends with exactly the number asked for.

Whoever else runs trials of the same run (a worker that outlived its parent, say), a run never
exceeds its ``n_trials``: the trials it has *claimed* (COMPLETE, or RUNNING in a live process)
are counted before any worker starts, each worker stops once the run has them all, and a trial
that finds, once created, that the run already has its ``n_trials`` stops its worker without
evaluating anything (it is PRUNED and no longer counted as the run's).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from .optuna_adapter import claimed_trials, unmarked_running

__all__ = [
    "RUN_ATTR",
    "SURPLUS_ATTR",
    "RunRecord",
    "claimed_by",
    "completed_by",
    "continue_or_start",
    "running_in",
]

#: The trial user attribute holding the id of the run that ran it.
RUN_ATTR = "search_run"
#: How long a count of a run's trials below a number waits for lower trials to name their run.
UNMARKED_WAIT_S = 5.0
#: Set (to the run id) on a trial started after its run had all its trials; its RUN_ATTR is None.
SURPLUS_ATTR = "surplus_of"


@dataclass(frozen=True)
class RunRecord:
    """One run of the search command in a run directory (the manifest's ``run`` entry)."""

    id: str
    n_trials: int
    finished: bool = False
    continued: int = 0  # how many times a rerun took it up again

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any] | None) -> RunRecord | None:
        run = (manifest or {}).get("run")
        if not isinstance(run, Mapping):
            return None
        try:
            return cls(
                str(run["id"]),
                int(run["n_trials"]),
                bool(run.get("finished", False)),
                int(run.get("continued", 0)),
            )
        except (KeyError, TypeError, ValueError):
            return None


def completed_by(study: optuna.Study, run_id: str) -> int:
    """The trials of ``study`` that the run ``run_id`` completed."""
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    return sum(t.user_attrs.get(RUN_ATTR) == run_id for t in study.get_trials(False, states=done))


def continue_or_start(
    previous: Mapping[str, Any] | None, study: optuna.Study, n_trials: int
) -> tuple[RunRecord, int]:
    """The run to do now and how many trials it completed already (0 for a new run).

    ``previous`` is the run directory's manifest before this run (None if there is none). Its
    run is continued when it did not finish, belongs to the same study and asked for the same
    ``n_trials``; otherwise a new run starts.
    """
    last = RunRecord.from_manifest(previous)
    if (
        last is not None
        and not last.finished
        and last.n_trials == n_trials
        and (previous or {}).get("study_name") == study.study_name
    ):
        run = RunRecord(last.id, n_trials, False, last.continued + 1)
        return run, min(completed_by(study, run.id), n_trials)
    return RunRecord(uuid.uuid4().hex[:12], n_trials), 0


def _run_trials(study: optuna.Study, run_id: str) -> list[tuple[int, str]]:
    """``(number, state)`` of the run's COMPLETE, PRUNED and RUNNING trials."""
    return claimed_trials(study, RUN_ATTR, run_id)


def claimed_by(study: optuna.Study, run_id: str, before: int | None = None) -> int:
    """The trials the run ``run_id`` has claimed: COMPLETE (or PRUNED) and RUNNING ones;
    with ``before``, only those numbered below it.

    A trial below ``before`` created an instant ago may not have named its run yet (its worker
    writes that first thing): counted now, it would be missed here and, numbered lower, would
    not count the trial asking either, so both would run. With ``before``, the count waits until
    every RUNNING trial below it has named its run (at most :data:`UNMARKED_WAIT_S`: its worker
    may have been killed)."""
    if before is not None:
        deadline = time.monotonic() + UNMARKED_WAIT_S
        while unmarked_running(study, RUN_ATTR, before) and time.monotonic() < deadline:
            time.sleep(0.05)
    return sum(before is None or n < before for n, _ in _run_trials(study, run_id))


def running_in(study: optuna.Study, run_id: str) -> int:
    """The run's trials RUNNING now (in some process that is alive, or whose death has not been
    noticed yet)."""
    return sum(state == "RUNNING" for _, state in _run_trials(study, run_id))
