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
- ``parent killed alone``: ``kill -9`` of the search's own process only (as the OOM killer picks
  one process), never its process group: its workers must stop with it (``orphans`` counts
  those still alive 5 s later), and the same command finishes the run.
- ``SIGINT`` (Ctrl-C: the terminal signals the whole process group) and ``SIGTERM`` (``kill``
  of the parent alone): the search must stop with one line (``one_line``: its stderr ends with
  ``interrupted`` / ``terminated``, no traceback), leave no trial RUNNING (``left_running``, read
  right after it stopped) and no worker behind; the same command finishes the run.
- ``full disk``: training (its second epoch), a 2-worker search, an export over an earlier one
  and a fine-tune, each on a real small tmpfs (``mount -t tmpfs -o size=…``, root only): one
  error line naming the file (``one_line``), no traceback, the previous file whole
  (``previous_intact``), nothing half-written left (``leftovers``); the search is then finished
  by the same command once the tmpfs is remounted larger (``final_complete`` / ``asked``).

For the searches: ``complete_lost`` counts trials COMPLETE at a kill but not at the end,
``stale_running`` the trials the kills left RUNNING, ``stale_failed`` those of them FAIL at the
end, ``retried`` those with a COMPLETE retry of the same subnet (of ``retryable``: the ones that
had chosen a subnet), ``running_left`` trials still RUNNING at the end, and ``final_complete``
the trials the run completed, against ``asked``.

    python bench/faults.py                   # all scenarios, a few minutes
    python bench/faults.py --only train --kills 3
    python bench/faults.py --only parent,signals,disk --kills 3   # merged into faults.csv
    python bench/faults.py --markdown        # the README's table, from faults.csv

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
from search.testing import PostgresCluster, child_pids, find_postgres_bin, running_pids
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
    orphans: int | None = None  # workers still alive 5 s after their parent stopped
    left_running: int | None = None  # trials RUNNING right after a signal stopped the search
    one_line: str | None = None  # "n of m": stops that printed just the expected line
    previous_intact: str | None = None  # full disk: "n of m" previous files still whole
    leftovers: int | None = None  # full disk: temporary files or staging dirs left
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


# -- the parent alone, Ctrl-C, SIGTERM ----------------------------------------------------------


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_piped(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """As :func:`_start`, but stderr is kept apart (its last line is checked)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=ENV,
            stdout=out,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_default_sigint,  # Ctrl-C acts as at a terminal, however this was started
        )


def stop_scenario(
    work: Path,
    checkpoint: Path,
    storage: str | None,
    label: str,
    kind: str,
    kills: int,
    rng: random.Random,
) -> tuple[Row, list[Kill]]:
    """``kind``: ``parent killed alone`` (SIGKILL to the parent's pid), ``SIGINT`` (to the
    process group, as Ctrl-C) or ``SIGTERM`` (to the parent's pid). Each stop is followed by the
    same command, which must finish the run."""
    started = time.perf_counter()
    slug = kind.split()[0].lower()
    run, log, asked = work / f"{slug}-{label}", work / f"{slug}-{label}.log", 40
    url = storage or default_storage_url(run)
    observer = Observer(url, run)
    row = Row(kind, label, orphans=0, left_running=0)
    records: list[Kill] = []
    command = _search_args(checkpoint, run, asked, storage, f"{slug}-{label}")
    expected = {"SIGINT": "interrupted", "SIGTERM": "terminated"}.get(kind)
    clean = 0
    for number in range(1, kills + 1):
        process = _start_piped(command, log)
        t0 = time.perf_counter()
        if not observer.wait_complete(process, len(observer.complete) + rng.randint(2, 8)):
            raise SystemExit(f"the search ended before stop {number}; see {log}")
        time.sleep(rng.uniform(0.0, 0.3))
        workers = child_pids(process.pid)
        observer.note(set())  # remember what is COMPLETE now
        if kind == "SIGINT":
            os.killpg(process.pid, signal.SIGINT)
        else:
            os.kill(
                process.pid, signal.SIGKILL if kind == "parent killed alone" else signal.SIGTERM
            )
        _, err = process.communicate(timeout=300)
        time.sleep(5)
        orphans = running_pids(workers)
        for pid in orphans:  # (so that the next start is not disturbed)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        text = err.decode(errors="replace")
        lines = text.strip().splitlines()
        if expected is not None:
            clean += bool(lines) and lines[-1] == expected and "Traceback" not in text
        running = [t.number for t in observer.trials() if t.state == TrialState.RUNNING]
        row.kills += 1
        row.orphans += len(orphans)  # type: ignore[operator]
        row.left_running += len(running)  # type: ignore[operator]
        records.append(
            Kill(
                kind,
                label,
                number,
                slug,
                round(time.perf_counter() - t0, 3),
                {
                    "trials_complete": len(observer.complete),
                    "status": process.returncode,
                    "orphans": len(orphans),
                    "left_running": len(running),
                },
            )
        )
    _wait(_start(command, log), log)
    row.resumes = row.kills
    if expected is not None:
        row.one_line = f"{clean} of {row.kills}"
    observer.finish(row, asked)
    # (What a stop left RUNNING is counted per stop above, in left_running.)
    row.stale_running = row.stale_failed = row.retryable = row.retried = None
    row.seconds = round(time.perf_counter() - started, 1)
    return row, records


# -- a real full disk ---------------------------------------------------------------------------
@contextlib.contextmanager
def _tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _one_error(result: subprocess.CompletedProcess[str], fragment: str) -> bool:
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    return (
        result.returncode == 2
        and "Traceback" not in result.stderr
        and len(errors) == 1
        and lines[-1] == errors[0]
        and fragment in errors[0]
        and "no space left on the device" in errors[0]
    )


def _hidden(where: Path) -> int:
    return sum(1 for p in where.rglob(".*") if ".hydra" not in p.parts)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=ENV, capture_output=True, text=True
    )


def disk_scenario(work: Path) -> tuple[Row, list[Kill]]:
    """Training, search, export and fine-tune writing onto small real tmpfs mounts."""
    import hashlib

    started = time.perf_counter()
    row, records = Row("full disk", "real tmpfs", leftovers=0), []
    ok = intact = 0
    base = work / "disk-inputs"
    trained = base / "train"
    _wait(
        _start(
            [
                "supernet.train",
                f"hydra.run.dir={trained}",
                "data.train_subset=64",
                "train.epochs=1",
            ],
            work / "disk.log",
        ),
        work / "disk.log",
    )
    checkpoint = trained / "supernet.pt"
    searched = base / "search"
    small = [
        "search.sampler=random",
        "search.progress=false",
        "search.plots_png=false",
        "search.threads=1",
    ]
    _wait(
        _start(
            [
                "search",
                f"supernet={checkpoint}",
                f"hydra.run.dir={searched}",
                "search.n_trials=4",
                *small,
            ],
            work / "disk.log",
        ),
        work / "disk.log",
    )

    def record(what: str, good: bool, kept: bool, where: Path, detail: str) -> None:
        nonlocal ok, intact
        ok += good
        intact += kept
        row.kills += 1
        row.leftovers += _hidden(where)  # type: ignore[operator]
        records.append(
            Kill(
                "full disk",
                "real tmpfs",
                row.kills,
                what,
                0.0,
                {"one_line": good, "previous_intact": kept, "error": detail[:300]},
            )
        )

    # 1. training: the second epoch's checkpoint does not fit
    with _tmpfs(work / "disk-train", "4m") as disk:
        result = _cli(
            "supernet.train",
            f"hydra.run.dir={disk}/run",
            "data.train_subset=64",
            "train.epochs=2",
            "train.batch_size=32",
        )
        epoch = _epoch(disk / "run")
        record(
            "training, epoch 2",
            _one_error(result, f"{disk}/run/supernet.pt"),
            epoch == 1,
            disk,
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
        )
    # 2. a fine-tune: its second checkpoint does not fit
    with _tmpfs(work / "disk-finetune", "400k") as disk:
        result = _cli(
            "supernet.train",
            f"hydra.run.dir={disk}/ft",
            "mode=finetune",
            f"supernet={checkpoint}",
            "subnet=smallest",
            "data.train_subset=64",
            "train.epochs=2",
        )
        try:
            kept = (
                int(
                    load_checkpoint(
                        disk / "ft" / "checkpoint.pt", expected_format="vitnas-subnet-training"
                    )["epoch"]
                )
                == 1
            )
        except CheckpointError:
            kept = False
        record(
            "fine-tune, epoch 2",
            _one_error(result, f"{disk}/ft/checkpoint.pt"),
            kept,
            disk,
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
        )
    # 3. an export over an earlier one
    with _tmpfs(work / "disk-export", "300k") as disk:
        out = disk / "best"
        first = _cli("search.export", str(searched), "trial=0", f"out={out}", "onnx=false")
        if first.returncode != 0:
            raise SystemExit(f"the first export failed: {first.stderr[-2000:]}")
        before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
        result = _cli("search.export", str(searched), "trial=1", f"out={out}", "overwrite=true")
        after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
        record(
            "export over an earlier one",
            _one_error(result, f"{out}/model"),
            before == after,
            disk,
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
        )
    # 4. a 2-worker search; then the same command with room again
    with _tmpfs(work / "disk-search", "400k") as disk:
        run, asked = disk / "search", 24
        args = [
            "search",
            f"supernet={checkpoint}",
            f"hydra.run.dir={run}",
            f"search.n_trials={asked}",
            "search.n_workers=2",
            *small,
        ]
        result = _cli(*args)
        url = default_storage_url(run)
        try:
            study = optuna.load_study(study_name=None, storage=url)
            done = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
            kept = True
        except Exception:  # (a damaged database: what this must never be)
            done, kept = set(), False
        record(
            "search, 2 workers",
            _one_error(result, f"{run}/study.db"),
            kept,
            disk,
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "",
        )
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        again = _cli(*args)
        study = optuna.load_study(study_name=None, storage=url)
        complete = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
        row.complete_lost = len(done - complete)
        row.final_complete = len(complete) if again.returncode == 0 else -1
        row.running_left = sum(t.state == TrialState.RUNNING for t in study.trials)
        row.asked = asked
    row.one_line = f"{ok} of {row.kills}"
    row.previous_intact = f"{intact} of {row.kills}"
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


SCENARIOS = ("train", "search", "parent", "signals", "disk")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _merge(path: Path, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """``rows`` replace the rows of ``path`` with the same ``keys``; the others are kept."""
    new = {tuple(str(r[k]) for k in keys) for r in rows}
    kept = [r for r in _read_rows(path) if tuple(str(r[k]) for k in keys) not in new]
    return kept + rows


_KILL_COLUMNS = [
    ("scenario", "scenario"),
    ("storage", "storage"),
    ("kills", "kills"),
    ("resumes", "resumes"),
    ("mid_write", "killed mid-write"),
    ("corrupt_checkpoints", "corrupt checkpoints"),
    ("weights_equal", "final weights equal"),
    ("orphans", "orphaned workers"),
    ("complete_lost", "COMPLETE lost"),
    ("stale_running", "left RUNNING → FAIL"),
    ("retried", "retried (of retryable)"),
    ("running_left", "still RUNNING"),
    ("final_complete", "final COMPLETE / asked"),
]
_STOP_COLUMNS = [
    ("scenario", "scenario"),
    ("storage", "storage"),
    ("kills", "stops"),
    ("one_line", "one error line"),
    ("previous_intact", "previous file whole"),
    ("orphans", "orphaned workers"),
    ("left_running", "left RUNNING by the stop"),
    ("leftovers", "temp files left"),
    ("complete_lost", "COMPLETE lost"),
    ("running_left", "still RUNNING"),
    ("final_complete", "final COMPLETE / asked"),
]
_NAMES = {
    "train": "training",
    "search whole": "whole search",
    "SIGINT": "Ctrl-C (SIGINT to the group)",
    "SIGTERM": "SIGTERM (parent alone)",
}


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key) or ""
    if value in ("", "-", "None", "nan"):
        return "–"
    if key == "weights_equal":
        return "yes (every tensor)" if value == "True" else "NO"
    if key == "resumes":
        how = {"train": "resume=auto", "search workers": "replaced"}.get(row["scenario"], "reruns")
        return f"{value} ({how})"
    if key == "stale_running":
        return f"{value} → {row.get('stale_failed') or 0}"
    if key == "retried":
        return f"{value} of {row.get('retryable') or 0}"
    if key == "final_complete":
        return f"{value} / {row.get('asked')}"
    return str(value)


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    lines = [
        "| " + " | ".join(title for _, title in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        storage = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(row["storage"])
        cells = [_cell(row, key) for key, _ in columns]
        cells[0] = _NAMES.get(row["scenario"], row["scenario"])
        cells[1] = storage or _cell(row, "storage")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(path: Path) -> str:
    """The README's two tables of fault scenarios (kills; stops and full disks), from
    ``faults.csv``."""
    rows = _read_rows(path)
    stops = ("SIGINT", "SIGTERM", "full disk")
    kills = [r for r in rows if r["scenario"] not in stops]
    others = [r for r in rows if r["scenario"] in stops]
    lines = _table(kills, _KILL_COLUMNS)
    if others:
        lines += ["", *_table(others, _STOP_COLUMNS)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="kills per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        default=None,
        help=f"comma-separated scenarios among {', '.join(SCENARIOS)} (rows merged into --out)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.csv")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown(args.out), end="")
        return
    only = set(SCENARIOS if args.only is None else args.only.split(","))
    if only - set(SCENARIOS):
        parser.error(f"--only: unknown scenario(s) {', '.join(sorted(only - set(SCENARIOS)))}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="vitnas-faults-"))
    rows: list[Row] = []
    kills: list[Kill] = []
    try:
        if "train" in only:
            row, records = train_scenario(work / "train", args.kills, rng)
            rows.append(row)
            kills += records
            print(f"train: {asdict(row)}", flush=True)
        if only & {"search", "parent", "signals"}:
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
                    runs: list[Any] = []
                    if "search" in only:
                        runs += [workers_scenario, whole_scenario]
                    kinds = (["parent killed alone"] if "parent" in only else []) + (
                        ["SIGINT", "SIGTERM"] if "signals" in only else []
                    )
                    for kind in kinds:
                        runs.append(
                            lambda w, c, s, lbl, k, r, kind=kind: stop_scenario(
                                w, c, s, lbl, kind, k, r
                            )
                        )
                    for scenario in runs:
                        row, records = scenario(work, checkpoint, storage, label, args.kills, rng)
                        rows.append(row)
                        kills += records
                        print(f"{row.scenario} {label}: {asdict(row)}", flush=True)
        if "disk" in only:
            if os.geteuid() != 0:
                print("full disk: skipped (mounting a tmpfs needs root)", flush=True)
            else:
                row, records = disk_scenario(work)
                rows.append(row)
                kills += records
                print(f"full disk: {asdict(row)}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    table = pd.DataFrame([asdict(r) for r in rows], dtype=object).fillna("-")
    print()
    print(table.to_string(index=False))
    merged = _merge(args.out, [asdict(r) for r in rows], ("scenario", "storage"))
    _write(args.out, merged)
    detail = args.out.with_name(args.out.stem + "_kills.csv")
    per_kill = [
        {**{k: v for k, v in asdict(r).items() if k != "detail"}, **r.detail} for r in kills
    ]
    _write(detail, _merge(detail, per_kill, ("scenario", "storage", "kill")))
    print(f"\nwritten: {args.out}, {detail}")


if __name__ == "__main__":
    main()
