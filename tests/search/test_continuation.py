"""Which run a rerun of the search command continues, and what it still owes."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import DictConfig
from optuna.trial import TrialState, create_trial

from search.continuation import RUN_ATTR, RunRecord, continue_or_start
from search.runner import run_search


def _study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage="sqlite:///:memory:", study_name="s")
    for run, state in [("a", TrialState.COMPLETE)] * 3 + [
        ("a", TrialState.FAIL),
        ("a", TrialState.RUNNING),
        ("b", TrialState.COMPLETE),
    ]:
        values = 0.5 if state == TrialState.COMPLETE else None
        study.add_trial(create_trial(state=state, value=values, user_attrs={RUN_ATTR: run}))
    return study


def _manifest(**run: object) -> dict[str, object]:
    return {"study_name": "s", "run": {"id": "a", "n_trials": 10, "finished": False, **run}}


def test_an_unfinished_run_is_continued_with_what_it_owes() -> None:
    run, done = continue_or_start(_manifest(), _study(), 10)
    assert run == RunRecord("a", 10, finished=False, continued=1)
    assert done == 3  # its COMPLETE trials: not the failed, running or other run's ones
    again, _ = continue_or_start({"study_name": "s", "run": run.to_dict()}, _study(), 10)
    assert again.continued == 2


def test_otherwise_a_new_run_starts() -> None:
    study = _study()
    for previous, n_trials in [
        (None, 10),  # a new run directory
        (_manifest(finished=True), 10),  # the last run finished: the command adds trials
        (_manifest(), 20),  # another n_trials: another run
        ({**_manifest(), "study_name": "other"}, 10),  # another study
        ({"study_name": "s"}, 10),  # a manifest from before runs were recorded
    ]:
        run, done = continue_or_start(previous, study, n_trials)
        assert run.id != "a" and not run.finished and run.continued == 0 and done == 0
        assert run.n_trials == n_trials


def test_a_finished_run_is_recorded_and_its_trials_carry_its_id(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = search_config(f"supernet={random_checkpoint}", "search.n_trials=3")
    result = run_search(cfg, tmp_path)
    run = RunRecord.from_manifest(yaml.safe_load((tmp_path / "study.yaml").read_text()))
    assert run is not None and run.finished and run.n_trials == 3 and run.continued == 0
    study = optuna.load_study(study_name=result.study_name, storage=result.storage_url)
    assert [t.user_attrs[RUN_ATTR] for t in study.trials] == [run.id] * 3
    again = run_search(cfg, tmp_path)  # finished: the same command adds three more
    assert len(again.trials) == 6


def _contents(run_dir: Path) -> dict[str, object]:
    """The run dir's files, byte for byte, and the study database as SQL: its bytes may change
    without a write (SQLite folds its -wal file into it when the last connection closes, which
    for the first search's in-process storage happens whenever the garbage collector says)."""
    files: dict[str, object] = {
        p.name: p.read_bytes()
        for p in run_dir.iterdir()
        if p.is_file() and not p.name.startswith("study.db")
    }
    with contextlib.closing(sqlite3.connect(run_dir / "study.db")) as db:
        files["study.db"] = list(db.iterdump())
    return files


def test_another_search_in_a_run_dir_is_refused_before_anything_is_written(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """A run dir holds one search: the same dir with another budget (another study) would
    replace its manifest and tables, so it is refused, naming the difference."""
    import pytest

    from supernet.common.errors import UserError

    first = ("search.sampler=random", "search.n_trials=3", f"supernet={random_checkpoint}")
    run_search(search_config(*first, "budget.flops=1M"), tmp_path)
    before = _contents(tmp_path)
    with pytest.raises(UserError) as refused:
        run_search(search_config(*first, "budget.flops=2M"), tmp_path)
    message = str(refused.value)
    assert "holds the search of study" in message
    # the one bound that changed, not the budget's eight
    assert "(budget.flops 1000000.0 -> 2000000.0)" in message and "min_params" not in message
    assert "give it its own hydra.run.dir" in message
    assert _contents(tmp_path) == before
    studies = optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")
    assert len(studies) == 1
    # the first search's own settings continue it
    again = run_search(search_config(*first, "budget.flops=1M"), tmp_path)
    assert len(again.trials) == 6


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_trial_that_has_not_named_its_run_yet_is_waited_for(
    storage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``claimed_by(before=n)`` counts only once every RUNNING trial below n names its run (both
    counts would otherwise miss a just-created one); a trial that never does is waited for only
    UNMARKED_WAIT_S."""
    import threading

    from search import continuation
    from search.optuna_adapter import unmarked_running

    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url)
    first, second = study.ask(), study.ask()
    second.set_user_attr(RUN_ATTR, "r")
    assert unmarked_running(study, RUN_ATTR, second.number) == [first.number]
    assert unmarked_running(study, RUN_ATTR, first.number) == []
    timer = threading.Timer(0.3, first.set_user_attr, (RUN_ATTR, "r"))
    timer.start()
    assert continuation.claimed_by(study, "r", before=second.number) == 1  # after the wait
    timer.join()
    assert unmarked_running(study, RUN_ATTR, second.number) == []
    third = study.ask()  # never names its run: the count goes on without it
    fourth = study.ask()
    monkeypatch.setattr(continuation, "UNMARKED_WAIT_S", 0.5)
    start = time.monotonic()
    assert continuation.claimed_by(study, "r", before=fourth.number) == 2
    assert 0.5 <= time.monotonic() - start < 5 and third.number < fourth.number
