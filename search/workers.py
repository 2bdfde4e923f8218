"""Search workers: each runs ``study.optimize`` on its share of the trials.

One worker runs in the calling process; ``search.n_workers > 1`` starts that many processes
(``python -m search._worker``, the job on stdin). Every worker loads the supernet once, keeps the
validation tensors in memory for all its trials, and opens its own storage connection with
heartbeats. The parent has created the study already, and shows the progress of all of them.

A worker process killed by a signal (``kill -9``, the OOM killer) loses nothing: the parent fails
the trial it left running and queues it again with the same subnet (what a stale heartbeat would
do after the grace period, but at once), then starts a new worker for the trials the dead one had
left (``search.worker_restarts`` times per run), so the run still ends with ``n_trials`` trials.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from supernet import Supernet
from supernet.checkpoint import load_supernet

from .costs import CostModel
from .objective import Objective, ValData, load_val_data, worker_name
from .samplers import build_sampler
from .settings import SearchSettings
from .stale import fail_and_retry, fail_silent_trials, retry_callback
from .storage import open_storage

__all__ = ["FINISHED", "WorkerJob", "count_finished", "run_worker", "run_workers", "worker_seed"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass(frozen=True)
class WorkerJob:
    settings: SearchSettings
    storage_url: str
    study_name: str
    index: int
    n_trials: int
    threads: int
    attempt: int = 0  # restarts of this worker so far (a restarted worker draws other subnets)
    run_id: str | None = None  # the search run, recorded with each trial


def worker_seed(seed: int | None, index: int, attempt: int = 0) -> int | None:
    """Independent sampler seeds per worker (same seed and worker → same proposals)."""
    if seed is None:
        return None
    entropy = [seed, index] + ([attempt] if attempt else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def configure_logging(verbose: bool) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_worker(
    job: WorkerJob,
    data: ValData,
    net: Supernet | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> Objective:
    """Run ``job.n_trials`` trials of the study; returns the objective (for its counters)."""
    s = job.settings
    torch.set_num_threads(job.threads)
    configure_logging(s.verbose)
    device = resolve_device(s.device)
    if net is None:
        net, _ = load_supernet(s.supernet, map_location=device)
    net = net.to(device).eval()
    data = ValData(data.images.to(device), data.labels.to(device))
    budget = s.parsed_budget()
    profile = s.latency(net.space)
    costs = CostModel(net.space, profile.predict_ms if profile is not None else None)
    objective = Objective(
        net,
        data,
        budget,
        costs,
        s.objectives,
        s.batch_size,
        measure_latency=profile if s.measure_latency else None,
        run_id=job.run_id,
    )
    sampler = build_sampler(
        s.sampler,
        s.sampler_options,
        space=net.space,
        is_feasible=lambda subnet: budget.is_feasible(costs(subnet)),
        n_objectives=len(s.objectives),
        seed=worker_seed(s.seed, job.index, job.attempt),
        n_workers=s.n_workers,
    )
    storage = open_storage(
        job.storage_url,
        heartbeat_interval=s.heartbeat_interval,
        grace_period=s.grace_period,
        max_retry=s.max_retry,
    )
    study = optuna.load_study(study_name=job.study_name, storage=storage, sampler=sampler)
    study.optimize(
        objective,
        n_trials=job.n_trials,
        timeout=s.timeout,
        callbacks=[on_trial] if on_trial else None,
        gc_after_trial=False,
    )
    return objective


def _job_to_json(job: WorkerJob) -> str:
    data = dataclasses.asdict(job)
    data["settings"]["supernet"] = str(job.settings.supernet)
    return json.dumps(data)


def _job_from_json(text: str) -> WorkerJob:
    data = json.loads(text)
    settings = data.pop("settings")
    settings["supernet"] = Path(settings["supernet"])
    settings["objectives"] = tuple(settings["objectives"])
    return WorkerJob(settings=SearchSettings(**settings), **data)


def worker_process_main() -> None:
    """``python -m search._worker`` with the job as JSON on stdin: one worker process.

    (Not on the command line: a storage URL may hold a password, and ``ps`` shows arguments.)
    """
    job = _job_from_json(sys.stdin.read())
    net, payload = load_supernet(job.settings.supernet)
    data = load_val_data(payload["data"], net.space, job.settings.val_size)
    try:
        run_worker(job, data, net=net)
    except KeyboardInterrupt:
        sys.exit(130)  # the parent reports the interruption once


def shares(n_trials: int, n_workers: int) -> list[int]:
    """Split ``n_trials`` as evenly as possible: 5 over 2 workers is [3, 2]."""
    return [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]


def threads_per_worker(settings: SearchSettings) -> int:
    if settings.threads:
        return settings.threads
    return max(1, (os.cpu_count() or 1) // settings.n_workers)


def run_workers(
    settings: SearchSettings,
    storage_url: str,
    study: optuna.Study,
    data: ValData,
    net: Supernet,
    progress: Callable[[int], None] | None = None,
    run_id: str | None = None,
    attempt: int = 0,
) -> list[str]:
    """Run ``settings.n_trials`` trials with ``settings.n_workers`` workers.

    ``progress(n)`` is called with the number of trials finished so far in this run. Returns one
    line per worker that did not finish cleanly (empty when all did). ``run_id`` is stored with
    every trial; ``attempt`` > 0 (a continued run) gives the workers other sampler seeds.
    """
    threads = threads_per_worker(settings)
    jobs = [
        WorkerJob(settings, storage_url, study.study_name, i, n, threads, attempt, run_id)
        for i, n in enumerate(shares(settings.n_trials, settings.n_workers))
        if n > 0
    ]
    if len(jobs) == 1:
        done = 0

        def tick(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done)

        run_worker(jobs[0], data, net=net, on_trial=tick)
        return []

    start = count_finished(study)
    # Worker processes are started as `python -m search._worker`: plain subprocesses work
    # under any Hydra launcher (multiprocessing cannot start children from a joblib worker).
    root = str(Path(__file__).resolve().parent.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    restarts = settings.worker_restarts
    failures: list[str] = []
    workers: list[_Process] = []
    checked = time.monotonic()
    try:
        workers = [_Process.start(job, env) for job in jobs]
        while True:
            for i, worker in enumerate(workers):
                code = worker.process.poll()
                if code is None or worker.reported:
                    continue
                worker.reported = True
                if code > 0:
                    failures.append(f"{worker.name} exited with status {code}")
                elif code < 0:  # killed by a signal: replace it
                    completed, lost = _reap(study, worker)
                    left = worker.job.n_trials - completed
                    what = (
                        f"{worker.name} was killed by {_signal_name(-code)} after {completed} of "
                        f"its {worker.job.n_trials} trials"
                    )
                    if lost:
                        what += f"; the trial(s) it left running, {lost}, " + (
                            "failed and are queued again with the same subnet"
                            if retry_callback(study) is not None
                            else "failed (heartbeats are off, so they are not retried)"
                        )
                    if left <= 0:
                        print(f"note: {what}", file=sys.stderr)
                    elif restarts == 0:
                        failures.append(
                            f"{what}; not restarted (search.worker_restarts="
                            f"{settings.worker_restarts} used up)"
                        )
                    else:
                        restarts -= 1
                        job = dataclasses.replace(
                            worker.job, n_trials=left, attempt=worker.job.attempt + 1
                        )
                        workers[i] = _Process.start(job, env)
                        print(f"note: {what}; restarted for the other {left}", file=sys.stderr)
            if all(w.process.poll() is not None and w.reported for w in workers):
                break
            if settings.grace_period and time.monotonic() - checked > settings.grace_period:
                fail_silent_trials(study, settings.grace_period)
                checked = time.monotonic()
            time.sleep(0.5)
            if progress:
                progress(count_finished(study) - start)
    finally:
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.terminate()  # its running trial is retried later (heartbeat)
        for worker in workers:
            worker.process.wait()
    if progress:
        progress(count_finished(study) - start)
    return failures


@dataclass
class _Process:
    """A worker process and what the parent needs to replace it if it is killed."""

    job: WorkerJob
    process: subprocess.Popen[str]
    started: datetime
    reported: bool = False

    @property
    def name(self) -> str:
        return f"worker {self.job.index}"

    @classmethod
    def start(cls, job: WorkerJob, env: dict[str, str]) -> _Process:
        started = datetime.now()  # the clock Optuna stamps the trials' datetime_start with
        command = [sys.executable, "-m", "search._worker"]
        process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, text=True)
        assert process.stdin is not None
        process.stdin.write(_job_to_json(job))
        process.stdin.close()
        return cls(job, process, started)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _reap(study: optuna.Study, worker: _Process) -> tuple[int, list[int]]:
    """After ``worker`` died: the number of trials it completed, and the numbers of the trials
    it left RUNNING, which are failed and queued again (as a stale heartbeat would do)."""
    name = worker_name(worker.process.pid)
    completed, running = 0, []
    for trial in study.get_trials(deepcopy=False):
        start = trial.datetime_start
        if trial.user_attrs.get("worker") != name or start is None or start < worker.started:
            continue  # another process's (or another run's, should the pid repeat)
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            completed += 1
        elif trial.state == TrialState.RUNNING:
            running.append(trial._trial_id)
    return completed, fail_and_retry(study, running)
