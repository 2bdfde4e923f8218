"""Storage URLs that cannot work fail at once with one line naming the problem and the fix."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
from omegaconf import DictConfig

from search.runner import run_search
from search.storage import STUDY_ATTR, StudyMismatchError, open_storage, open_study, sqlite_path
from supernet.common.errors import UserError


def test_refused_connection() -> None:
    with pytest.raises(UserError) as info:
        open_storage("postgresql://nobody:secret@127.0.0.1:1/db")
    message = str(info.value)
    assert message.startswith("cannot open the Optuna storage 'postgresql://nobody:***@127.0.0.1")
    assert "Connection refused" in message and "secret" not in message
    assert "check that the database server is running and reachable" in message


@pytest.mark.slow
def test_a_server_that_never_answers_times_out() -> None:
    """A port that accepts connections but never speaks: without a connect timeout psycopg2
    waits for the system's TCP timeout (minutes). The URL's own connect_timeout wins."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        errors: list[BaseException] = []

        def connect(url: str) -> None:
            try:
                open_storage(url)
            except BaseException as exc:
                errors.append(exc)

        base = f"postgresql://nobody@127.0.0.1:{port}/db"
        for url in (f"{base}?connect_timeout=1", base):  # the URL's timeout, then ours
            thread = threading.Thread(target=connect, args=(url,), daemon=True)
            thread.start()
            thread.join(timeout=120)
            assert not thread.is_alive(), f"open_storage({url!r}) hangs on a silent server"
    assert len(errors) == 2
    for exc in errors:
        assert isinstance(exc, UserError) and "timeout expired" in str(exc), exc


def test_sqlite_file_in_a_directory_that_cannot_exist(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="unable to open database file; check that the database"):
        open_storage(f"sqlite:///{tmp_path / 'file' / 'study.db'}")


def test_malformed_url() -> None:
    with pytest.raises(UserError, match=r"give an RDB URL such as sqlite:///path/study\.db"):
        open_storage("not a url")


def test_a_study_left_unlabelled_by_a_killed_run_is_taken_over(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    optuna.create_study(storage=storage, study_name="s")  # killed before labelling it
    identity = {"checkpoint_sha256": "abc", "objectives": ["val_acc"]}
    study, created = open_study(storage, "s", ["minimize"], identity)
    assert created and study.user_attrs[STUDY_ATTR] == identity
    assert open_study(storage, "s", ["minimize"], identity)[1] is False  # now a resume
    other = optuna.create_study(storage=storage, study_name="t")  # someone else's, with trials
    other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(StudyMismatchError, match="was made for another search"):
        open_study(storage, "t", ["minimize"], identity)


def _pop_all(url: str, name: str, start: Any) -> list[int]:
    """Pop waiting trials until none is left (the first step of every trial a worker runs)."""
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=0))
    start.wait()
    popped = []
    while (trial_id := study._pop_waiting_trial_id()) is not None:
        popped.append(trial_id)
    return popped


def test_each_waiting_trial_goes_to_one_worker_on_sqlite(tmp_path: Path) -> None:
    """Enqueued seeds and retried trials wait in the study; on SQLite, pysqlite's deferred
    transactions let two processes both read a trial as WAITING and both take it (seen as a
    worker's 'Cannot tell a COMPLETE trial'). Every waiting trial must be taken exactly once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="pop", storage=open_storage(url, heartbeat_interval=0))
    for x in range(120):
        study.enqueue_trial({"x": x}, skip_if_exists=False)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(6, mp_context=context) as pool:
        start = manager.Event()
        futures = [pool.submit(_pop_all, url, "pop", start) for _ in range(6)]
        time.sleep(3)  # every process has opened the study
        start.set()
        popped = [trial_id for future in futures for trial_id in future.result(timeout=300)]
    assert sorted(popped) == sorted(t._trial_id for t in study.get_trials())


@pytest.mark.parametrize("char", ["?", "#", "%"])
def test_the_study_stays_in_a_run_dir_named_with_url_characters(
    char: str,
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
) -> None:
    """``?``, ``#`` and ``%`` mean something in a URL: unescaped, ``sqlite:///…/run?1/study.db``
    put the database at ``…/run`` (outside the run dir), where ``…/run?2`` resumed it."""
    first, second = tmp_path / f"run{char}1", tmp_path / f"run{char}2"
    cfg = search_config(f"supernet={random_checkpoint}", "search.n_trials=2")
    run_search(cfg, first)
    again = run_search(cfg, second)
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name, second.name]
    for run_dir in (first, second):
        assert (run_dir / "study.db").is_file()
    assert len(again.trials) == 2  # a study of its own, not the first one's resumed
    assert sqlite_path(again.storage_url) == second.resolve() / "study.db"
