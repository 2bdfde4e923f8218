"""Search workers: each runs ``study.optimize`` on its share of the trials.

One worker runs in the calling process; ``search.n_workers > 1`` starts that many processes
(``python -m search._worker``, the job on stdin). Every worker loads the supernet once, keeps the
validation tensors in memory for all its trials, and opens its own storage connection with
heartbeats. The parent has created the study already, and shows the progress of all of them.

A worker process killed by a signal (``kill -9``, the OOM killer) loses nothing: the parent fails
the trial it left running and queues it again with the same subnet (what a stale heartbeat would
do after the grace period, but at once), then starts a new worker for the trials the dead one had
left (``search.worker_restarts`` times per run), so the run still ends with ``n_trials`` trials.

Workers die with their parent: each asks Linux for SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``; if the parent died before it could ask, it sees a new parent and stops),
and watches its stdin, a pipe only the parent holds, for its end (elsewhere than Linux too).
SIGTERM and Ctrl-C stop a worker the same way: Optuna fails the trial it was running, which is
queued again with the same subnet, and it exits; nothing is left RUNNING.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import TrialState

from supernet import Supernet
from supernet.checkpoint import load_supernet
from supernet.common.cli import Terminated, ignore_late_interrupts, one_line
from supernet.common.console import say
from supernet.common.device import resolve_device as common_resolve_device
from supernet.common.errors import UserError
from supernet.common.processes import die_with_parent
from supernet.common.resources import ResourceError, available_memory, format_bytes, process_memory

from .continuation import claimed_by
from .costs import CostModel
from .objective import Objective, ValData, load_val_data, worker_name
from .optuna_adapter import OPTIMIZE_LOGGER, get_trial, retry_callback, trial_id
from .samplers import build_sampler
from .settings import SearchSettings
from .stale import fail_and_retry, fail_silent_trials, settle_interrupted
from .storage import open_storage, storage_error

__all__ = ["FINISHED", "WorkerJob", "count_finished", "run_worker", "run_workers", "worker_seed"]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)

_log = logging.getLogger(__name__)


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
    run_total: int | None = None  # the run's n_trials: no worker runs a trial beyond them


def worker_seed(seed: int | None, index: int, attempt: int = 0) -> int | None:
    """Independent sampler seeds per worker (same seed and worker → same proposals)."""
    if seed is None:
        return None
    entropy = [seed, index] + ([attempt] if attempt else [])
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def resolve_device(name: str) -> torch.device:
    """``search.device`` (see :func:`supernet.common.device.resolve_device`)."""
    return common_resolve_device(name, "search.device")


class _QuietFailures(logging.Filter):
    """Drop Optuna's two warnings (one with a traceback) about a trial failed by Ctrl-C or
    SIGTERM, by the storage itself (a full disk), or by another process meanwhile: the command
    says ``interrupted``, the storage's failure, or :func:`_failed_elsewhere`'s line, once; such
    a trial is queued again."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        number = text.split(" ")[1] if text.startswith("Trial ") else ""
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyboardInterrupt | optuna.exceptions.UpdateFinishedTrialError) or (
            exc is not None and storage_error(exc, "") is not None
        ):
            self.dropped.add(number)
            return False
        return not (number in self.dropped and " failed with value " in text)


_FILTER = _QuietFailures()


def configure_logging(verbose: bool) -> None:
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    optimize_logger = logging.getLogger(OPTIMIZE_LOGGER)
    if _FILTER not in optimize_logger.filters:
        optimize_logger.addFilter(_FILTER)


def _quiet_storage_threads(url: str) -> None:
    """A storage failure in Optuna's heartbeat thread (a full disk) prints no traceback: the
    main thread meets the same failure at its next write and reports it in one line."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None and storage_error(args.exc_value, url) is not None:
            return
        previous(args)

    if getattr(previous, "__name__", "") != "hook":
        threading.excepthook = hook


def count_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_worker(
    job: WorkerJob,
    data: ValData,
    net: Supernet | None = None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
    worker_process: bool = False,
) -> Objective:
    """Run ``job.n_trials`` trials of the study; returns the objective (for its counters).

    Ctrl-C or SIGTERM stops it without leaving a trial RUNNING (see :class:`_Interrupts`)."""
    s = job.settings
    torch.set_num_threads(job.threads)
    configure_logging(s.verbose)
    device = resolve_device(s.device)
    if net is None:
        net, _ = load_supernet(s.supernet, map_location=device)
    net = net.to(device).eval()
    data = ValData(data.images.to(device), data.labels.to(device))
    budget = s.budget
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
        run_total=job.run_total,
    )
    sampler = build_sampler(
        s.sampler,
        s.sampler_options,
        space=net.space,
        is_feasible=lambda subnet: budget.is_feasible(costs(subnet)),
        n_objectives=len(s.objectives),
        seed=worker_seed(s.seed, job.index, job.attempt),
        n_workers=s.n_workers,
        n_trials=job.run_total if job.run_total is not None else s.n_trials,
    )
    storage = open_storage(
        job.storage_url,
        heartbeat_interval=s.heartbeat_interval,
        grace_period=s.grace_period,
        max_retry=s.max_retry,
    )
    _quiet_storage_threads(job.storage_url)
    study = optuna.load_study(study_name=job.study_name, storage=storage, sampler=sampler)
    callbacks = [on_trial] if on_trial else []
    if job.run_id is not None and job.run_total is not None:
        run_id, total = job.run_id, job.run_total

        def stop_when_done(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if claimed_by(study, run_id) >= total:  # others' running trials count too
                study.stop()

        callbacks.append(stop_when_done)
    interrupts = _Interrupts(repeat_raises=not worker_process)
    objective.interruptible = interrupts.opened

    def guarded(trial: optuna.Trial) -> float | tuple[float, ...]:
        interrupts.current = trial_id(trial)
        interrupts.raise_pending()  # a signal while the trial was created: stop before it runs
        return objective(trial)

    callbacks.append(lambda study, trial: interrupts.raise_pending())
    finished = 0

    def count(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal finished
        finished += 1

    callbacks.append(count)
    started = time.monotonic()
    try:
        with interrupts.installed():
            while finished < job.n_trials:
                timeout = None if s.timeout is None else s.timeout - (time.monotonic() - started)
                if timeout is not None and timeout <= 0:
                    break
                interrupts.current = None
                try:
                    study.optimize(
                        guarded,
                        n_trials=job.n_trials - finished,
                        timeout=timeout,
                        callbacks=callbacks,
                        gc_after_trial=False,
                    )
                    break
                except (ValueError, AssertionError) as exc:
                    if not _cannot_tell(exc) or not _failed_elsewhere(
                        study, interrupts.current, s.grace_period
                    ):
                        raise
                    finished += 1  # the trial is spent; its retry evaluates the subnet again
    except KeyboardInterrupt:
        settle_interrupted(study, interrupts.current)
        raise
    return objective


def _cannot_tell(exc: BaseException) -> bool:
    """Whether ``exc`` is Optuna refusing to record a result for a trial that is finished
    already ("Cannot tell a FAIL trial", raised as such or, when the objective had returned, as
    the context of the assertion that follows it in Optuna's bookkeeping), not an error of the
    objective itself (which Optuna re-raises after recording the failure)."""
    for error in (exc, exc.__context__):
        if isinstance(error, ValueError) and str(error).startswith("Cannot tell a "):
            return True
    return False


def _failed_elsewhere(study: optuna.Study, current: int | None, grace_period: object) -> bool:
    """Whether the trial this worker was evaluating was finished by another process: another
    worker's heartbeat check failed it as stale (``search.grace_period`` shorter than this
    machine took between two heartbeats) while it ran, so Optuna could not record its result.
    The worker logs it and goes on; the retry of the failed trial evaluates the subnet again."""
    if current is None:
        return False
    trial = get_trial(study, current)
    if not trial.state.is_finished():
        return False
    logging.getLogger(OPTIMIZE_LOGGER).warning(
        "trial %d was failed by another worker's heartbeat check while this worker evaluated "
        "it (no heartbeat for search.grace_period=%ss on a loaded machine?); its result is "
        "dropped and its retry evaluates the subnet again; raise search.grace_period if this "
        "repeats",
        trial.number,
        grace_period,
    )
    return True


class _Interrupts:
    """Ctrl-C and SIGTERM during ``study.optimize``, acted on only where stopping leaves nothing
    half done: at once while a subnet is evaluated (Optuna then fails the trial, and it is
    queued again), otherwise (a storage read or write) as soon as that is over.
    In a worker process a second signal is ignored (the first one is being acted on); in the
    search's own process a second Ctrl-C stops at once."""

    def __init__(self, repeat_raises: bool) -> None:
        self.repeat_raises = repeat_raises
        self.pending: KeyboardInterrupt | None = None
        self.received = False
        self.open = False  # inside the objective
        self.current: int | None = None  # the storage id of the trial being run

    def handler(self, signum: int, frame: object) -> None:
        exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        if self.received and not self.repeat_raises:
            return
        first, self.received = not self.received, True
        if self.open or not first:
            self.open = False
            raise exc
        self.pending = exc

    def raise_pending(self) -> None:
        if self.pending is not None:
            exc, self.pending = self.pending, None
            raise exc

    @contextlib.contextmanager
    def opened(self) -> Iterator[None]:
        """The body may be interrupted at any moment (a signal received before: now)."""
        self.raise_pending()
        self.open = True
        try:
            yield
        finally:
            self.open = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # A signal the process ignores (SIGINT in a background job of a script) stays ignored.
        previous = {
            s: handler
            for s in (signal.SIGINT, signal.SIGTERM)
            if (handler := signal.getsignal(s)) is not signal.SIG_IGN
        }
        for number in previous:
            signal.signal(number, self.handler)
        try:
            yield
        finally:
            for number, handler in previous.items():
                stopping = self.received and not self.repeat_raises
                signal.signal(number, _ignore if stopping else handler)


def _job_to_json(job: WorkerJob) -> str:
    data = dataclasses.asdict(job)
    data["settings"] = json.loads(job.settings.to_json())
    return json.dumps(data)


def _job_from_json(text: str) -> WorkerJob:
    data = json.loads(text)
    return WorkerJob(settings=SearchSettings.from_json(data.pop("settings")), **data)


#: The environment variable that gives a worker its parent's pid.
PARENT_ENV = "VITNAS_SEARCH_PARENT"


def _die_with_parent() -> None:
    """Have Linux send SIGTERM when the parent dies; if it died already, stop now."""
    parent = os.environ.get(PARENT_ENV)
    die_with_parent(int(parent) if parent else None)


def _watch_parent(pipe: int) -> None:
    """Read the parent's pipe until its end (the parent closed it, or died): then SIGTERM
    this process, which stops it as Ctrl-C would."""

    def watch() -> None:
        try:  # the file descriptor itself: a buffered reader's lock would hang the exit
            while os.read(pipe, 4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ignore(signum: int, frame: object) -> None:
    """(A later SIGINT or SIGTERM, while the worker stops.)"""


def _stop_once(signum: int, frame: object) -> None:
    """The first SIGINT or SIGTERM stops the worker; later ones are ignored, so that the worker
    can fail and requeue its trial in peace. (A Python no-op rather than ``SIG_IGN``: a signal
    already pending when the handler changes would otherwise raise an error.)"""
    signal.signal(signal.SIGINT, _ignore)
    signal.signal(signal.SIGTERM, _ignore)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def worker_process_main() -> None:
    """``python -m search._worker`` with the job as one JSON line on stdin: one worker process.

    (Not on the command line: a storage URL may hold a password, and ``ps`` shows arguments.)
    Stdin stays open: its end means the parent is gone. A user error (a full disk, say) is
    written as one line to stdout, which the parent reads; everything else goes to stderr.
    """
    signal.signal(signal.SIGTERM, _stop_once)
    # A search started with SIGINT ignored (a background job of a script: `python -m search &`)
    # ignores Ctrl-C in its parent; its workers do too, or they would stop and be restarted.
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _stop_once)
    _die_with_parent()
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything printed goes to stderr: stdout is the parent's error channel
    sys.stdout = sys.stderr
    logging.raiseExceptions = False
    try:
        job = _job_from_json(sys.stdin.readline())
        _watch_parent(sys.stdin.fileno())
        net, payload = load_supernet(job.settings.supernet)
        data = load_val_data(payload["data"], net.space, job.settings.val_size)
        try:
            run_worker(job, data, net=net, worker_process=True)
        except Exception as exc:
            failure = storage_error(exc, job.storage_url)
            if failure is None:
                raise
            raise failure from None
    except KeyboardInterrupt as exc:
        sys.exit(143 if isinstance(exc, Terminated) else 130)  # the parent reports it once
    except UserError as exc:
        report.write(one_line(str(exc)) + "\n")
        report.flush()
        sys.exit(2)
    finally:
        # A signal from now on (the parent's, or the pipe watch's when the parent exits) would
        # strike an exit handler and print a traceback: the worker is stopping anyway.
        ignore_late_interrupts()


def shares(n_trials: int, n_workers: int) -> list[int]:
    """Split ``n_trials`` as evenly as possible: 5 over 2 workers is [3, 2]."""
    return [n_trials // n_workers + (i < n_trials % n_workers) for i in range(n_workers)]


def threads_per_worker(settings: SearchSettings) -> int:
    if settings.threads:
        return settings.threads
    return max(1, (os.cpu_count() or 1) // settings.n_workers)


def check_worker_memory(n_workers: int) -> None:
    """Refuse more worker processes than the free memory holds. Each worker loads what this
    process holds now (torch, the supernet, the validation data), so its size is the estimate."""
    if n_workers <= 1:
        return
    each, free = process_memory(), available_memory()
    if each is None or free is None or n_workers * each <= free:
        return
    fits = max(1, free // each)
    raise ResourceError(
        f"search.n_workers={n_workers} is more than this machine's memory holds: each worker "
        f"needs about {format_bytes(each)} (torch, the supernet and the validation data) and "
        f"{format_bytes(free)} is available; use search.n_workers={fits} or fewer"
    )


def run_workers(
    settings: SearchSettings,
    storage_url: str,
    study: optuna.Study,
    data: ValData,
    net: Supernet,
    progress: Callable[[int], None] | None = None,
    run_id: str | None = None,
    attempt: int = 0,
    run_total: int | None = None,
) -> list[str]:
    """Run ``settings.n_trials`` trials with ``settings.n_workers`` workers.

    ``progress(n)`` is called with the number of trials finished so far in this run. Returns one
    line per worker that did not finish cleanly (empty when all did). ``run_id`` is stored with
    every trial; ``attempt`` > 0 (a continued run) gives the workers other sampler seeds;
    ``run_total``: the run's n_trials, which no worker goes beyond whoever else runs its trials.
    """
    threads = threads_per_worker(settings)
    jobs = [
        WorkerJob(
            settings, storage_url, study.study_name, i, n, threads, attempt, run_id, run_total
        )
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
        PARENT_ENV: str(os.getpid()),
    }
    restarts = settings.worker_restarts
    failures: list[str] = []
    workers: list[_Process] = []
    checked = time.monotonic()
    # Ctrl-C and SIGTERM are acted on between two rounds of the loop below, never inside a
    # call: one that struck subprocess's poll() between its lock's acquire and its try left
    # that lock held, and the wait() for that worker in _stop then hung for ever (once in
    # CI). A second signal still stops at once.
    interrupts = _Interrupts(repeat_raises=True)
    try:
        with interrupts.installed():
            workers = [_Process.start(job, env) for job in jobs]
            while True:
                interrupts.raise_pending()
                for i, worker in enumerate(workers):
                    code = worker.process.poll()
                    if code is None or worker.reported:
                        continue
                    worker.reported = True
                    signum = -code if code < 0 else _STOPPED_BY.get(code)
                    if code > 0 and signum is None:
                        failures.append(worker.failure(code))
                    elif signum is not None:  # killed (or stopped) by a signal: replace it
                        completed, lost, unchosen = _reap(study, worker)
                        left = worker.job.n_trials - completed
                        what = (
                            f"{worker.name} was killed by {_signal_name(signum)} after {completed} "
                            f"of its {worker.job.n_trials} trials"
                        )
                        if lost:
                            what += f"; the trial(s) it left running, {lost}, " + (
                                "failed and are queued again with the same subnet"
                                if retry_callback(study) is not None
                                else "failed (heartbeats are off, so they are not retried)"
                            )
                        if unchosen:
                            what += (
                                f"; the trial(s) it had started without choosing a subnet yet, "
                                f"{unchosen}, failed (there is nothing to queue again)"
                            )
                        if left <= 0 or (
                            run_id and run_total and claimed_by(study, run_id) >= run_total
                        ):
                            say(_log, f"note: {what}", stderr=True)
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
                            say(_log, f"note: {what}; restarted for the other {left}", stderr=True)
                if all(w.process.poll() is not None and w.reported for w in workers):
                    break
                if settings.grace_period and time.monotonic() - checked > settings.grace_period:
                    fail_silent_trials(study, settings.grace_period)
                    checked = time.monotonic()
                time.sleep(0.5)
                if progress:
                    progress(count_finished(study) - start)
    finally:
        _stop(workers)
        for worker in workers:
            _reap(study, worker)  # what a worker stopped by force left running
    if progress:
        progress(count_finished(study) - start)
    return failures


#: Exit statuses of a worker stopped by a signal it handled (it failed and requeued its trial).
_STOPPED_BY = {130: signal.SIGINT, 143: signal.SIGTERM}


def _stop(workers: list[_Process], wait_s: float = 30.0) -> None:
    """Stop the workers still running: SIGTERM (each fails and requeues its trial, then exits),
    then SIGKILL for any still there after ``wait_s``; close their pipes."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.terminate()
    deadline = time.monotonic() + wait_s
    for worker in workers:
        try:
            worker.process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait()
        worker.close()


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
        process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert process.stdin is not None
        # One line, and the pipe stays open: the worker stops when it closes (the parent died).
        process.stdin.write(_job_to_json(job) + "\n")
        process.stdin.flush()
        return cls(job, process, started)

    def failure(self, code: int) -> str:
        """Why the worker stopped with status ``code``: its one-line error, if it wrote one."""
        message = ""
        if self.process.stdout is not None:
            try:
                message = self.process.stdout.read().strip()
            except (OSError, ValueError):
                message = ""
        if message:
            return f"{self.name} stopped: {message}"
        return f"{self.name} exited with status {code} (its error is above)"

    def close(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _reap(study: optuna.Study, worker: _Process) -> tuple[int, list[int], list[int]]:
    """After ``worker`` died: the number of trials it completed, and the numbers of the trials
    it left RUNNING, which are failed and queued again (as a stale heartbeat would do) — those
    that had chosen a subnet, then those that had not (failed only: there is nothing to retry)."""
    name = worker_name(worker.process.pid)
    completed, running, unchosen = 0, [], set()
    for trial in study.get_trials(deepcopy=False):
        start = trial.datetime_start
        if trial.user_attrs.get("worker") != name or start is None or start < worker.started:
            continue  # another process's (or another run's, should the pid repeat)
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            completed += 1
        elif trial.state == TrialState.RUNNING:
            running.append(trial_id(trial))
            if not trial.params:
                unchosen.add(trial.number)
    lost = fail_and_retry(study, running)
    return completed, [n for n in lost if n not in unchosen], [n for n in lost if n in unchosen]
