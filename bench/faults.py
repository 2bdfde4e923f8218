"""Fault injection: ``kill -9`` supernet training and searches at random moments, then check
that nothing finished was lost.

Scenarios (all moments drawn from ``--seed``; the real command lines, as subprocesses):

- ``train``: ``python -m supernet.train`` (digits, sandwich sampling, stochastic depth,
  augmentation) killed ``--kills`` times and each time started again with ``resume=auto``. Two
  kills land inside a checkpoint write (right after its temporary file appears; ``mid_write``
  counts those where the temporary file was still there after the kill), the others at a random
  moment of the run. After every kill the checkpoint must load (``corrupt_checkpoints``); at the
  end every weight and optimizer tensor must equal an uninterrupted run's (``torch.equal``).
- ``search workers``: ``python -m search search.n_workers=2`` on SQLite and on PostgreSQL; at
  random moments a random worker process is killed (the search replaces it).
- ``search whole``: the whole search (its process group) is killed at random moments and the same
  command started again, which finishes the killed run.

For the searches: ``complete_lost`` counts trials COMPLETE at a kill but not at the end,
``stale_running`` the trials the kills left RUNNING, ``stale_failed`` those of them FAIL at the
end, ``retried`` those with a COMPLETE retry of the same subnet (of ``retryable``: the ones that
had chosen a subnet), ``running_left`` trials still RUNNING at the end, and ``final_complete``
the trials the run completed, against ``asked``.

    python bench/faults.py                   # all scenarios, a few minutes
    python bench/faults.py --only train --kills 3

Writes ``results/benchmarks/faults.csv`` (one row per scenario) and ``faults_kills.csv`` (one row
per kill).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import torch
import yaml
from optuna.trial import FrozenTrial, TrialState

from search.continuation import RUN_ATTR
from search.storage import default_storage_url
from search.testing import PostgresCluster, child_pids, find_postgres_bin
from supernet import SearchSpace, Supernet, save_checkpoint
from supernet.checkpoint import load_checkpoint
from supernet.common.atomic import atomic_write
from supernet.common.errors import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results" / "benchmarks"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

EPOCHS = 8
TRAIN = [
    "data.train_subset=384",
    f"train.epochs={EPOCHS}",
    "train.drop_path=0.1",  # stochastic depth; sandwich sampling and augmentation by default
    "resume=auto",
]
SPACE = SearchSpace(  # digits images, a small space: search trials take milliseconds
    embed_dim=(16, 32),
    depth=(1, 2),
    num_heads=(1, 2),
    mlp_ratio=(1.0, 2.0),
    img_size=8,
    patch_size=2,
    in_chans=1,
    num_classes=10,
    head_dim=8,
    name="digits_small",
)


@dataclass
class Row:
    scenario: str
    storage: str
    kills: int = 0
    mid_write: int | None = None
    resumes: int = 0
    corrupt_checkpoints: int | None = None
    weights_equal: bool | None = None
    complete_lost: int | None = None
    stale_running: int | None = None
    stale_failed: int | None = None
    retryable: int | None = None
    retried: int | None = None
    running_left: int | None = None
    final_complete: int | None = None
    asked: int | None = None
    runs: int | None = None  # search run ids among the COMPLETE trials: 1 (one run, continued)
    seconds: float = 0.0


@dataclass
class Kill:
    scenario: str
    storage: str
    kill: int
    kind: str
    after_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=ENV,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killing it kills its workers
        )


def _wait(process: subprocess.Popen[bytes], log: Path) -> None:
    if process.wait() != 0:
        raise SystemExit(f"{process.args} failed ({process.returncode}); see {log}")


# -- training -----------------------------------------------------------------------------------
def _temps(run: Path) -> list[Path]:
    return list(run.glob(".supernet.pt.*.tmp")) if run.is_dir() else []


def _rows(run: Path) -> int:
    """Epochs in ``metrics.csv`` (written after each epoch's checkpoint)."""
    metrics = run / "metrics.csv"
    return len(pd.read_csv(metrics)) if metrics.is_file() else 0


def _epoch(run: Path) -> int | None:
    """The checkpoint's epoch; None if there is none; -1 if it cannot be read (corrupt)."""
    if not (run / "supernet.pt").exists():
        return None
    try:
        return int(load_checkpoint(run / "supernet.pt")["epoch"])
    except CheckpointError:
        return -1


def train_scenario(work: Path, kills: int, rng: random.Random) -> tuple[Row, list[Kill]]:
    started = time.perf_counter()
    whole, run, log = work / "whole", work / "killed", work / "train.log"
    t0 = time.perf_counter()
    _wait(_start(["supernet.train", f"hydra.run.dir={whole}", *TRAIN], log), log)
    total = time.perf_counter() - t0
    training = float(pd.read_csv(whole / "metrics.csv")["wall_s"].iloc[-1])
    startup = max(total - training, 1.0)
    epochs = EPOCHS
    kinds = ["mid-write"] * min(2, kills) + ["random"] * max(kills - 2, 0)
    rng.shuffle(kinds)
    row, records = Row("train", "-", mid_write=0, corrupt_checkpoints=0), []
    for number, kind in enumerate(kinds, 1):
        done = max(_epoch(run) or 0, 0)
        old = set(_temps(run))  # left by an earlier kill; the new run removes them
        process = _start(["supernet.train", f"hydra.run.dir={run}", *TRAIN], log)
        t0 = time.perf_counter()
        target = None
        if kind == "mid-write":
            while process.poll() is None and not set(_temps(run)) - old:
                time.sleep(0.0005)
        else:
            # A random epoch of those left, then a random moment inside it (a step, or the
            # validation at its end); in the first epoch of a fresh run, counted from startup.
            target = rng.randrange(done, epochs - 1)
            while process.poll() is None and target > done and _rows(run) < target:
                time.sleep(0.005)
            delay = rng.uniform(0, 0.9 * training / epochs)
            deadline = time.perf_counter() + delay + (startup if target == done else 0.0)
            while process.poll() is None and time.perf_counter() < deadline:
                time.sleep(0.005)
        after = time.perf_counter() - t0
        if process.poll() is not None:
            raise SystemExit(f"training ended before kill {number}; see {log}")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        torn = bool(set(_temps(run)) - old)  # its temporary file outlived it: killed mid-write
        epoch = _epoch(run)
        row.kills += 1
        row.mid_write += torn  # type: ignore[operator]
        row.corrupt_checkpoints += epoch == -1  # type: ignore[operator]
        records.append(
            Kill(
                "train",
                "-",
                number,
                kind,
                round(after, 3),
                {
                    "in_epoch": None if target is None else target + 1,
                    "checkpoint_epoch": epoch,
                    "temp_file_left": torn,
                },
            )
        )
    _wait(_start(["supernet.train", f"hydra.run.dir={run}", *TRAIN], log), log)
    row.resumes = row.kills
    a, b = load_checkpoint(whole / "supernet.pt"), load_checkpoint(run / "supernet.pt")
    equal = a["model"].keys() == b["model"].keys() and all(
        torch.equal(a["model"][k], b["model"][k]) for k in a["model"]
    )
    states = a["optimizer"]["state"], b["optimizer"]["state"]
    equal = equal and states[0].keys() == states[1].keys()
    for key in states[0]:
        equal = equal and all(
            torch.equal(states[0][key][k], states[1][key][k]) for k in states[0][key]
        )
    row.weights_equal = equal and a["epoch"] == b["epoch"] == epochs and not _temps(run)
    row.seconds = round(time.perf_counter() - started, 1)
    return row, records


# -- search -------------------------------------------------------------------------------------
def _search_args(
    checkpoint: Path, run: Path, n_trials: int, storage: str | None, study: str
) -> list[str]:
    return [
        "search",
        f"supernet={checkpoint}",
        f"hydra.run.dir={run}",
        f"search.n_trials={n_trials}",
        "search.n_workers=2",
        "search.threads=1",
        "search.sampler=random",
        "search.progress=false",
        "search.plots_png=false",
        "search.heartbeat_interval=1",
        "search.grace_period=2",
        "search.worker_restarts=20",
        f"search.study_name={study}",
        *([f"search.storage={storage}"] if storage else []),
    ]


@contextlib.contextmanager
def _stopped(pids: list[int]) -> Iterator[None]:
    """Freeze processes (SIGSTOP) so that what they left in the study can be read exactly;
    the block kills them (SIGCONT afterwards only matters if it failed)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class Observer:
    """Reads the study between kills; remembers what was COMPLETE and what was left RUNNING."""

    def __init__(self, url: str, run: Path) -> None:
        self.url, self.run = url, run
        self.storage: optuna.storages.RDBStorage | None = None
        self.complete: set[int] = set()
        self.stale: set[int] = set()

    def trials(self) -> list[FrozenTrial]:
        if not (self.run / "study.yaml").is_file():
            return []  # not created yet (opening the storage now could race its creation)
        if self.storage is None:
            self.storage = optuna.storages.RDBStorage(self.url)
        study_name = yaml.safe_load((self.run / "study.yaml").read_text())["study_name"]
        return optuna.load_study(study_name=study_name, storage=self.storage).get_trials()

    def wait_complete(self, process: subprocess.Popen[bytes], count: int) -> bool:
        """Wait until ``count`` trials are COMPLETE; False if the search ended first."""
        while process.poll() is None:
            done = [t for t in self.trials() if t.state == TrialState.COMPLETE]
            if len(done) >= count:
                return True
            time.sleep(0.05)
        return False

    def note(self, running_of: set[str] | None) -> int:
        """Record the state now; ``running_of``: the workers (host:pid) whose RUNNING trials
        are left behind (None: all of them). Returns how many were left."""
        trials = self.trials()
        self.complete |= {t.number for t in trials if t.state == TrialState.COMPLETE}
        left = {
            t.number
            for t in trials
            if t.state == TrialState.RUNNING
            and (running_of is None or t.user_attrs.get("worker") in running_of)
        }
        self.stale |= left
        return len(left)

    def finish(self, row: Row, asked: int) -> None:
        trials = self.trials()
        by_number = {t.number: t for t in trials}
        complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
        row.complete_lost = len(self.complete - complete)
        row.stale_running = len(self.stale)
        row.stale_failed = sum(by_number[n].state == TrialState.FAIL for n in self.stale)
        retryable = [n for n in self.stale if by_number[n].params]
        row.retryable = len(retryable)
        # A retry keeps the choices the killed trial had made (all of them, unless it was killed
        # while choosing) and completes the subnet.
        row.retried = sum(
            any(
                t.system_attrs.get("failed_trial") == n
                and t.state == TrialState.COMPLETE
                and by_number[n].params.items() <= t.params.items()
                for t in trials
            )
            for n in retryable
        )
        row.running_left = sum(t.state == TrialState.RUNNING for t in trials)
        row.final_complete = len(complete)  # a fresh study: all of them are this run's
        row.runs = len({t.user_attrs.get(RUN_ATTR) for t in trials if t.number in complete})
        row.asked = asked


def workers_scenario(
    work: Path, checkpoint: Path, storage: str | None, label: str, kills: int, rng: random.Random
) -> tuple[Row, list[Kill]]:
    started = time.perf_counter()
    run, log, asked = work / f"workers-{label}", work / f"workers-{label}.log", 240
    url = storage or default_storage_url(run)
    observer = Observer(url, run)
    row, records = Row("search workers", label), []
    process = _start(_search_args(checkpoint, run, asked, storage, f"workers-{label}"), log)
    host = socket.gethostname()
    t0 = time.perf_counter()
    # Moments spread over the run: when a random number of trials is done, plus a fraction of
    # a trial, so that most kills land inside a trial (or inside a storage write).
    for number, target in enumerate(sorted(rng.sample(range(5, asked - 40), kills)), 1):
        if not observer.wait_complete(process, target):
            break
        time.sleep(rng.uniform(0.0, 0.05))
        workers = child_pids(process.pid)
        if not workers:
            continue
        with _stopped(workers):  # all of them, to see which are inside a trial right now
            running = {
                t.user_attrs.get("worker")
                for t in observer.trials()
                if t.state == TrialState.RUNNING
            }
            busy = [pid for pid in workers if f"{host}:{pid}" in running]
            pid = rng.choice(busy or workers)  # (a replacement may still be starting)
            left = observer.note({f"{host}:{pid}"})
            os.kill(pid, signal.SIGKILL)
        row.kills += 1
        records.append(
            Kill(
                "search workers",
                label,
                number,
                "worker",
                round(time.perf_counter() - t0, 3),
                {"trials_complete": len(observer.complete), "left_running": left},
            )
        )
    _wait(process, log)
    row.resumes = row.kills  # each killed worker was replaced by the search
    observer.finish(row, asked)
    row.seconds = round(time.perf_counter() - started, 1)
    return row, records


def whole_scenario(
    work: Path, checkpoint: Path, storage: str | None, label: str, kills: int, rng: random.Random
) -> tuple[Row, list[Kill]]:
    started = time.perf_counter()
    run, log, asked = work / f"whole-{label}", work / f"whole-{label}.log", 120
    url = storage or default_storage_url(run)
    observer = Observer(url, run)
    row, records = Row("search whole", label), []
    command = _search_args(checkpoint, run, asked, storage, f"whole-{label}")
    for number in range(1, kills + 1):
        process = _start(command, log)
        t0 = time.perf_counter()
        # When this start has completed a few more trials (a random number), plus a fraction of
        # a trial: the workers are busy in trials and storage writes.
        if not observer.wait_complete(process, len(observer.complete) + rng.randint(2, 15)):
            raise SystemExit(f"the search ended before kill {number}; see {log}")
        time.sleep(rng.uniform(0.0, 0.05))
        group = [process.pid, *child_pids(process.pid)]
        with _stopped(group):
            left = observer.note(None)
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        row.kills += 1
        records.append(
            Kill(
                "search whole",
                label,
                number,
                "search",
                round(time.perf_counter() - t0, 3),
                {"trials_complete": len(observer.complete), "left_running": left},
            )
        )
    _wait(_start(command, log), log)
    row.resumes = row.kills
    observer.finish(row, asked)
    row.seconds = round(time.perf_counter() - started, 1)
    return row, records


# -- main ---------------------------------------------------------------------------------------
def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["train", "search"], default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.csv")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="vitnas-faults-"))
    rows: list[Row] = []
    kills: list[Kill] = []
    try:
        if args.only in (None, "train"):
            row, records = train_scenario(work / "train", args.kills, rng)
            rows.append(row)
            kills += records
            print(f"train: {asdict(row)}", flush=True)
        if args.only in (None, "search"):
            torch.manual_seed(1)
            checkpoint = work / "supernet.pt"
            save_checkpoint(checkpoint, Supernet(SPACE), data={"name": "digits"}, train={})
            backends: list[tuple[str, str | None]] = [("sqlite", None)]
            with contextlib.ExitStack() as stack:
                if find_postgres_bin() is not None:
                    backends.append(("postgresql", stack.enter_context(PostgresCluster()).url))
                else:
                    print("PostgreSQL server binaries not found: SQLite only", flush=True)
                for label, storage in backends:
                    for scenario in (workers_scenario, whole_scenario):
                        row, records = scenario(work, checkpoint, storage, label, args.kills, rng)
                        rows.append(row)
                        kills += records
                        print(f"{row.scenario} {label}: {asdict(row)}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    table = pd.DataFrame([asdict(r) for r in rows], dtype=object).fillna("-")
    print()
    print(table.to_string(index=False))
    _write(args.out, [asdict(r) for r in rows])
    detail = args.out.with_name(args.out.stem + "_kills.csv")
    per_kill = [
        {**{k: v for k, v in asdict(r).items() if k != "detail"}, **r.detail} for r in kills
    ]
    _write(detail, per_kill)
    print(f"\nwritten: {args.out}, {detail}")


if __name__ == "__main__":
    main()
