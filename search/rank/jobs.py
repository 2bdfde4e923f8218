"""The work of a ranking run: inherited-weight evaluations and single-subnet training runs.

Each :class:`SubnetJob` is independent, so ``n_jobs`` processes (``spawn``ed, ``threads`` torch
threads each) run them at once, the most expensive first. Training goes through
:func:`supernet.train.train_subnet` with ``resume=auto``: a run directory that already holds the
finished run with the same subnet, data, recipe and seed is reused instead of trained again, and
one with other settings is refused with a message naming the difference.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from supernet import Subnet, complexity
from supernet.checkpoint import load_supernet
from supernet.common.errors import UserError
from supernet.common.processes import die_with_parent
from supernet.data import build_data
from supernet.evaluation import EvalSet, accuracies
from supernet.model import Supernet
from supernet.train import train_subnet
from supernet.train.resume import OtherSettings

from .settings import RankError

__all__ = ["KINDS", "SubnetJob", "run_jobs"]

log = logging.getLogger(__name__)

#: inherit: the supernet's weights evaluated as they are; scratch / finetune: a training run.
KINDS = ("inherit", "scratch", "finetune")


@dataclass(frozen=True)
class SubnetJob:
    """One evaluation (``inherit``) or training run (``scratch`` / ``finetune``) of a subnet.

    ``config`` is :func:`supernet.train.train_subnet`'s config for a training run; for
    ``inherit`` it holds ``supernet``, ``data``, ``eval_batch_size``, ``device``, ``threads``.
    """

    kind: str
    subnet: Subnet
    config: Mapping[str, Any]
    label: str = ""
    cost: float = 0.0  # for scheduling: the most expensive jobs start first
    extra: Mapping[str, Any] = field(default_factory=dict)  # copied into the result


_CACHE: dict[str, tuple[Supernet, EvalSet, EvalSet]] = {}


def _inherited(job: SubnetJob) -> dict[str, Any]:
    cfg = job.config
    torch.set_num_threads(int(cfg.get("threads") or torch.get_num_threads()))
    key = json.dumps([str(cfg["supernet"]), cfg["data"], cfg.get("device")], sort_keys=True)
    if key not in _CACHE:
        device = cfg.get("device", "cpu")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        net, _ = load_supernet(cfg["supernet"], map_location=device)
        splits = build_data(cfg["data"])
        splits.check_fits(net.space)
        size = int(cfg.get("eval_batch_size", 512))
        _CACHE.clear()  # one supernet at a time per process
        _CACHE[key] = (net.eval(), EvalSet(splits.val, size), EvalSet(splits.test, size))
    net, val, test = _CACHE[key]
    start = time.perf_counter()
    acc = {
        "val_acc": accuracies(net, val, {"a": job.subnet})["a"],
        "test_acc": accuracies(net, test, {"a": job.subnet})["a"],
    }
    return {**acc, "wall_s": time.perf_counter() - start}


def _train(job: SubnetJob) -> dict[str, Any]:
    result = train_subnet(dict(job.config))
    return {
        "val_acc": result.val_acc,
        "test_acc": result.test_acc,
        "initial_val_acc": result.initial_val_acc,
        "initial_test_acc": result.initial_test_acc,
        "epochs": result.epochs,
        "wall_s": result.wall_s,
        "run_dir": str(result.run_dir),
    }


def _run(job: SubnetJob) -> dict[str, Any]:
    """Run one job (in a worker process or in this one); user errors come back as RankError."""
    try:
        out = _inherited(job) if job.kind == "inherit" else _train(job)
    except OtherSettings as exc:  # a run this command made (it has no .hydra/ to look up)
        raise RankError(
            f"{job.kind} {job.subnet}: {exc.problem}; an earlier ranking trained it with those "
            "settings: repeat them, or rank in another hydra.run.dir (and another scratch_dir=, "
            "if given)"
        ) from None
    except UserError as exc:  # re-raised as a picklable error that names the job
        raise RankError(f"{job.kind} {job.subnet}: {exc}") from None
    return {"kind": job.kind, "subnet": job.subnet, "label": job.label, **job.extra, **out}


def run_jobs(
    jobs: Sequence[SubnetJob],
    n_jobs: int = 1,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``jobs`` (``n_jobs`` processes at once; 1 runs them here) and return their results
    in the order given. ``on_done`` sees each result as it finishes. The first failure cancels
    the jobs not started and is raised."""
    for job in jobs:
        if job.kind not in KINDS:
            raise ValueError(f"unknown job kind {job.kind!r}; kinds: {', '.join(KINDS)}")
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].cost)
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if n_jobs == 1:
        for i in order:
            results[i] = _run(jobs[i])
            if on_done is not None:
                on_done(results[i])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=n_jobs, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    ) as pool:
        # The workers start (spawned, on submit) with Ctrl-C ignored, which they inherit:
        # the terminal's Ctrl-C reaching one while it still imports torch printed a traceback.
        with _sigint_ignored():
            futures: dict[Future[dict[str, Any]], int] = {
                pool.submit(_run, jobs[i]): i for i in order
            }
        pending = set(futures)
        try:
            while pending:
                # each as it finishes (FIRST_EXCEPTION would return only once all had)
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()  # raises the job's error
                    if on_done is not None:
                        on_done(results[futures[future]])  # type: ignore[arg-type]
        except BaseException:
            # Ctrl-C, SIGTERM or a failed job: stop the runs in progress too, rather than wait
            # minutes for them (a training run resumes from its last epoch: resume=auto).
            # ProcessPoolExecutor has no public way to stop its workers before Python 3.14.
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                _terminate(process)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results  # type: ignore[return-value]


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored in this process (the main thread's) for the body, as before after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _init_worker(parent: int) -> None:
    """A pool worker: Ctrl-C is for its parent, which stops the pool (the whole process group
    gets it, and a worker would print its own traceback), and it dies with its parent, however
    that dies (a ``kill -9`` of the parent alone left the workers training on, re-parented)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (inherited already: see run_jobs)
    die_with_parent(parent)
    # tqdm's default lock is a multiprocessing one: a semaphore that a worker stopped by SIGTERM
    # never unlinks, and Python's resource tracker then warns of it after `interrupted`
    tqdm.set_lock(threading.RLock())


def _terminate(process: multiprocessing.process.BaseProcess | None) -> None:
    """Stop a worker (SIGTERM, then SIGKILL after 10 s) and reap it."""
    if process is None or not process.is_alive():
        return
    process.terminate()
    process.join(10)
    if process.is_alive():
        process.kill()
        process.join()


def training_cost(space: Any, subnet: Subnet, epochs: int) -> float:
    """A job's rough cost for scheduling: forward FLOPs × epochs."""
    return float(complexity.flops(space, subnet) * max(epochs, 1))
