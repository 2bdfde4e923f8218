"""``kill -9`` of search workers, of the whole search and of its parent process alone, Ctrl-C and
SIGTERM: nothing completed is lost, no worker outlives its parent, the trials left running are
failed and retried, and the run ends with exactly the trials asked for.

(``bench/faults.py`` repeats this at random moments, many times, and reports the counts.)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from search.storage import default_storage_url
from search.testing import child_pids, running_pids

ROOT = Path(__file__).resolve().parents[2]
Loader = Callable[[], optuna.Study]


def _command(checkpoint: Path, run_dir: Path, n_trials: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "search",
        f"supernet={checkpoint}",
        f"hydra.run.dir={run_dir}",
        f"search.n_trials={n_trials}",
        "search.n_workers=2",
        "search.sampler=random",
        "search.threads=1",
        "search.progress=false",
        "search.plots_png=false",
        "search.heartbeat_interval=1",
        "search.grace_period=2",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts in their own session; killed with their workers at the end."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(command: list[str], started: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        command,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so the test can kill all of it
        # Ctrl-C as at a terminal, even when the tests themselves run with SIGINT ignored (a
        # background job of a non-interactive shell, as CI may start them)
        preexec_fn=_default_sigint,
    )
    started.append(process)
    return process


def _loader(url: str, name: str) -> Loader:
    storage: list[optuna.storages.RDBStorage] = []

    def load() -> optuna.Study:
        if not storage:
            storage.append(optuna.storages.RDBStorage(url))
        return optuna.load_study(study_name=name, storage=storage[0])

    return load


def _wait_for_complete(
    load: Loader, process: subprocess.Popen[str], run_dir: Path, count: int
) -> None:
    """Wait until ``count`` trials are COMPLETE (the study exists once the manifest does: opening
    the storage earlier could race the search creating it)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        created = (run_dir / "study.yaml").is_file()
        if created and len(load().get_trials(False, states=(TrialState.COMPLETE,))) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} trials completed in time")


def _kill_a_worker_mid_trial(load: Loader, parent: int) -> tuple[list[int], set[int]]:
    """SIGKILL a worker while it runs a trial whose subnet it has chosen: stop it, check, kill
    (or let it go on and retry).

    Returns the trials it left running and the COMPLETE trials at that moment."""
    host = socket.gethostname()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = child_pids(parent)
        if workers:
            pid = workers[0]
            os.kill(pid, signal.SIGSTOP)
            killed = False
            try:
                trials = load().get_trials(deepcopy=False)
                mine = [t for t in trials if t.user_attrs.get("worker") == f"{host}:{pid}"]
                running = [t.number for t in mine if t.state == TrialState.RUNNING]
                # caught after choosing its subnet (one caught between ask and its first choice is
                # failed with nothing to queue again: the note then says so instead)
                if running and all(trials[n].params for n in running):
                    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    return running, complete
            finally:
                if not killed:
                    os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("never caught a worker in the middle of a trial")


def _check_recovered(
    trials: list[FrozenTrial], lost: list[int], complete_before: set[int], asked: int
) -> None:
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(completed) == asked
    assert complete_before <= {t.number for t in completed}  # no COMPLETE trial lost
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    for number in lost:
        assert trials[number].state == TrialState.FAIL
        chosen = trials[number].params  # all the subnet's choices, unless killed while choosing
        if chosen:  # a trial killed before choosing anything has nothing to retry
            retries = [t for t in completed if t.system_attrs.get("failed_trial") == number]
            assert len(retries) == 1 and chosen.items() <= retries[0].params.items()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_worker_is_replaced_and_its_trial_retried(
    backend: str,
    request: pytest.FixtureRequest,
    random_checkpoint: Path,
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
) -> None:
    name = f"killed-worker-{backend}"
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        extra = [f"search.storage={url}"]
    else:
        url, extra = default_storage_url(tmp_path), []
    command = _command(random_checkpoint, tmp_path, 40, f"search.study_name={name}", *extra)
    process = _start(command, started)
    load = _loader(url, name)
    _wait_for_complete(load, process, tmp_path, 6)
    lost, complete = _kill_a_worker_mid_trial(load, process.pid)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "killed by SIGKILL after" in err and "queued again with the same subnet" in err
    assert "restarted for the other" in err
    trials = load().get_trials()
    _check_recovered(trials, lost, complete, asked=40)
    workers = Counter(t.user_attrs["worker"] for t in trials if t.state == TrialState.COMPLETE)
    # The two first workers completed trials; the replacement (started, as the note above says)
    # completes some too unless the surviving worker finished the study while it was starting up.
    assert len(workers) in (2, 3)


@pytest.mark.slow
def test_a_killed_search_is_finished_by_the_same_command(
    random_checkpoint: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    command = _command(random_checkpoint, tmp_path, 30)
    process = _start(command, started)
    load = _loader(default_storage_url(tmp_path), "digits_small/val_acc/nobudget/random/seed0")
    _wait_for_complete(load, process, tmp_path, 6)
    os.killpg(process.pid, signal.SIGKILL)  # the search and its workers, as a lost machine
    process.wait()
    trials = load().get_trials()
    lost = [t.number for t in trials if t.state == TrialState.RUNNING]
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert len(complete) < 30
    time.sleep(3)  # past the grace period: the trials it left running are stale
    again = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing this directory's unfinished run" in again.stderr
    assert f"{len(complete)} of its 30 trials were done, {30 - len(complete)} to go" in again.stderr
    _check_recovered(load().get_trials(), lost, complete, asked=30)


# -- the parent alone, Ctrl-C, SIGTERM: as a user, a scheduler or the OOM killer does it ---------


def _gone_within(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while running_pids(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return running_pids(pids)


def _manifest_run(run_dir: Path) -> dict[str, object]:
    import yaml

    return dict(yaml.safe_load((run_dir / "study.yaml").read_text())["run"])


def _rerun_finishes(command: list[str], load: Loader, run_dir: Path, asked: int) -> None:
    """The same command finishes the run: exactly ``asked`` COMPLETE, nothing RUNNING."""
    again = subprocess.run(command, env=_env(), cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "continuing this directory's unfinished run" in again.stderr
    trials = load().get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == asked
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    assert _manifest_run(run_dir)["finished"] is True


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_workers_die_with_a_parent_killed_alone(
    backend: str,
    request: pytest.FixtureRequest,
    random_checkpoint: Path,
    tmp_path: Path,
    started: list[subprocess.Popen[str]],
) -> None:
    """SIGKILL to the search's own process only (as the OOM killer picks one process): its
    workers must not run on re-parented, and the rerun must still end with exactly n_trials."""
    name = f"parent-killed-{backend}"
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
        extra = [f"search.storage={url}"]
    else:
        url, extra = default_storage_url(tmp_path), []
    command = _command(random_checkpoint, tmp_path, 20, f"search.study_name={name}", *extra)
    process = _start(command, started)
    load = _loader(url, name)
    _wait_for_complete(load, process, tmp_path, 4)
    workers = child_pids(process.pid)
    assert len(workers) == 2
    os.kill(process.pid, signal.SIGKILL)  # the parent alone, not its process group
    process.wait()
    assert _gone_within(workers, 15) == []  # no orphan goes on running trials
    assert _manifest_run(tmp_path)["finished"] is False
    _rerun_finishes(command, load, tmp_path, asked=20)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_a_search_in_one_line_and_leaves_nothing_running(
    workers: int, random_checkpoint: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """Ctrl-C (SIGINT to the terminal's process group): 'interrupted' and nothing else on
    stderr after the search's header, status 130, no trial left RUNNING, the run not finished;
    the same command finishes it with exactly n_trials."""
    command = _command(random_checkpoint, tmp_path, 16, f"search.n_workers={workers}")
    process = _start(command, started)
    load = _loader(default_storage_url(tmp_path), "digits_small/val_acc/nobudget/random/seed0")
    _wait_for_complete(load, process, tmp_path, 5)
    children = child_pids(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    lines = err.strip().splitlines()
    assert lines[-1] == "interrupted", err[-3000:]
    clean = "Traceback" not in err and "failed with" not in err and "Error" not in err
    assert clean, err[-3000:]  # the whole stderr, not pytest's truncated diff
    assert _gone_within(children, 5) == []
    assert not [t.number for t in load().get_trials() if t.state == TrialState.RUNNING]
    assert _manifest_run(tmp_path)["finished"] is False
    _rerun_finishes(command, load, tmp_path, asked=16)


@pytest.mark.slow
def test_a_search_started_with_sigint_ignored_ignores_it_in_its_workers_too(
    random_checkpoint: Path, tmp_path: Path
) -> None:
    """A background job of a script (`python -m search ... &`) starts with SIGINT ignored, and
    so its parent ignores the terminal's Ctrl-C; its workers must too, rather than stop and be
    restarted: the run goes on and ends with exactly n_trials, no worker noted as killed."""
    command = _command(random_checkpoint, tmp_path, 12)
    process = subprocess.Popen(
        command,
        env=_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        load = _loader(default_storage_url(tmp_path), "digits_small/val_acc/nobudget/random/seed0")
        _wait_for_complete(load, process, tmp_path, 3)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err[-3000:]
    assert "killed by SIGINT" not in err and "interrupted" not in err, err[-3000:]
    trials = load().get_trials()
    assert len([t for t in trials if t.state == TrialState.COMPLETE]) == 12
    assert _manifest_run(tmp_path)["finished"] is True


@pytest.mark.slow
def test_sigterm_to_the_parent_alone_stops_its_workers(
    random_checkpoint: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """``kill <pid>`` of the search: 'terminated', status 143, workers stopped with it, nothing
    left RUNNING."""
    command = _command(random_checkpoint, tmp_path, 16)
    process = _start(command, started)
    load = _loader(default_storage_url(tmp_path), "digits_small/val_acc/nobudget/random/seed0")
    _wait_for_complete(load, process, tmp_path, 5)
    children = child_pids(process.pid)
    os.kill(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143 and err.strip().splitlines()[-1] == "terminated", err
    assert "Traceback" not in err
    assert _gone_within(children, 5) == []
    assert not [t.number for t in load().get_trials() if t.state == TrialState.RUNNING]
    _rerun_finishes(command, load, tmp_path, asked=16)


@pytest.mark.slow
def test_two_searches_started_at_once_in_one_directory(
    random_checkpoint: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """One runs, the other stops with one line; the run has exactly its n_trials."""
    command = _command(random_checkpoint, tmp_path, 12, "search.n_workers=1")
    first, second = _start(command, started), _start(command, started)
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: another search is running in")
    study = _loader(default_storage_url(tmp_path), "digits_small/val_acc/nobudget/random/seed0")()
    assert len(study.get_trials(False, states=(TrialState.COMPLETE,))) == 12


@pytest.mark.slow
def test_no_run_exceeds_its_trials_whoever_runs_them(
    random_checkpoint: Path, tmp_path: Path, started: list[subprocess.Popen[str]]
) -> None:
    """Two worker processes that each believe they owe the run all its 10 trials (as an
    orphaned worker and a rerun would): the run still gets exactly 10 COMPLETE trials."""
    from search.continuation import RUN_ATTR
    from search.runner import run_search
    from search.settings import SearchSettings
    from search.workers import PARENT_ENV, WorkerJob, _job_to_json

    settings = SearchSettings.from_config(
        {
            "supernet": str(random_checkpoint),
            "search": {
                "n_trials": 0,
                "sampler": "random",
                "progress": False,
                "plots_png": False,
                "seed_trials": False,
            },
        }
    )
    created = run_search(settings, tmp_path)  # the study, and nothing in it
    for index in range(2):
        job = WorkerJob(
            settings.replace(seed=index),
            created.storage_url,
            created.study_name,
            index,
            n_trials=10,
            threads=1,
            run_id="shared-run",
            run_total=10,
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "search._worker"],
            env={**_env(), PARENT_ENV: str(os.getpid())},
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # (so that the fixture can stop it, should the test fail)
        )
        assert process.stdin is not None
        process.stdin.write(_job_to_json(job) + "\n")
        process.stdin.flush()
        started.append(process)  # (its stdin stays open: the worker's parent is alive)
    for process in started:
        process.wait(timeout=300)
        assert process.returncode == 0
    trials = _loader(created.storage_url, created.study_name)().get_trials()
    ours = [t for t in trials if t.user_attrs.get(RUN_ATTR) == "shared-run"]
    assert len([t for t in ours if t.state == TrialState.COMPLETE]) == 10
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
