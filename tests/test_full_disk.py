"""A real full disk, through the real command lines: training's second epoch, a search, an
export and a fine-tune each write onto a small tmpfs until the kernel says ENOSPC.

Each must stop with one ``error:`` line naming the file it could not write (torch, safetensors
and Optuna's storage each raise something other than ``OSError`` there), no traceback, no
temporary file left, and the previous good file whole. The tmpfs is mounted for real (root, or
CAP_SYS_ADMIN); where that is not permitted the tests are skipped, saying so.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from supernet.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
Disk = Callable[[str], Path]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A digits supernet (1 epoch) and a 4-trial search of it, on an ordinary disk."""
    from search import run_search
    from supernet.train import train_supernet

    root = tmp_path_factory.mktemp("full_disk_inputs")
    run = train_supernet(
        {
            "run_dir": str(root / "train"),
            "space": "digits",
            "threads": 1,
            "data": {"name": "digits", "train_subset": 64},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    searched = run_search(
        {
            "supernet": str(run.checkpoint),
            "search": {"n_trials": 4, "sampler": "random", "progress": False, "plots_png": False},
        },
        root / "search",
    )
    return {"checkpoint": run.checkpoint, "search": searched.run_dir}


def _run(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The run failed with exactly one ``error:`` line, the last one, holding ``fragments``."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    return errors[0]


def _hidden(where: Path) -> list[Path]:
    """Temporary files and staging directories (the run dir's .hydra/ is Hydra's own)."""
    return [p for p in where.rglob(".*") if ".hydra" not in p.parts]


@pytest.mark.slow
def test_training_second_epoch_on_a_full_disk(small_disk: Disk) -> None:
    disk = small_disk("4m")  # one digits checkpoint (2.5 MB) fits, not two at once
    run = disk / "run"
    args = ("data.train_subset=64", "train.epochs=2", "train.batch_size=32")
    result = _run("supernet.train", f"hydra.run.dir={run}", *args)
    error = _one_error(
        result,
        f"cannot write {run}/supernet.pt",
        "no space left on the device",
        "then run the same command with resume=auto: it continues from epoch 1",
        "(its previous version is kept as it was)",
    )
    assert load_checkpoint(run / "supernet.pt")["epoch"] == 1  # the previous checkpoint, whole
    assert not _hidden(disk)
    # The free space it reports is the disk's once the half-written file is gone: torch's writer
    # held that file open (reported as 0.0 MiB) until the exception's frames were dropped.
    reported = float(re.search(r"\(([0-9.]+) MiB free there\)", error).group(1))  # type: ignore[union-attr]
    assert reported == pytest.approx(shutil.disk_usage(disk).free / 2**20, abs=0.11)
    assert reported > 1.0  # 4 MiB less one 2.5 MB checkpoint (and the run's small files)

    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    again = _run("supernet.train", f"hydra.run.dir={run}", *args, "resume=auto")
    assert again.returncode == 0, again.stderr[-3000:]
    assert load_checkpoint(run / "supernet.pt")["epoch"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("module", ["supernet.train", "search"])
def test_a_disk_too_full_for_hydras_own_files(
    module: str, trained: dict[str, Path], small_disk: Disk
) -> None:
    """Hydra writes the run directory's .hydra/ copies before the task starts: on a full disk the
    line named no directory, and a half-written .hydra/ was left behind."""
    disk = small_disk("8k")
    run = disk / "new" / "run"
    args = ("data.train_subset=64", "train.epochs=1")
    if module == "search":
        args = (f"supernet={trained['checkpoint']}",)
    result = _run(module, f"hydra.run.dir={run}", *args)
    _one_error(
        result,
        f"cannot write the run directory {run}: no space left on the device (",
        "KiB free there); free some space, or pass hydra.run.dir=<a directory on another disk>",
    )
    assert not list(disk.iterdir())  # the directories it made are gone again


@pytest.mark.slow
def test_finetune_on_a_full_disk(trained: dict[str, Path], small_disk: Disk) -> None:
    disk = small_disk("400k")  # the smallest subnet's checkpoint (230 kB) fits once
    run = disk / "finetune"
    result = _run(
        "supernet.train",
        f"hydra.run.dir={run}",
        "mode=finetune",
        f"supernet={trained['checkpoint']}",
        "subnet=smallest",
        "data.train_subset=64",
        "train.epochs=2",
    )
    _one_error(
        result,
        f"cannot write {run}/checkpoint.pt",
        "no space left on the device",
        "resume=auto: it continues from epoch 1",
    )
    kept = load_checkpoint(run / "checkpoint.pt", expected_format="vitnas-subnet-training")
    assert kept["epoch"] == 1
    assert not _hidden(disk)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_search_on_a_full_disk_then_finished_with_room(
    workers: int, trained: dict[str, Path], small_disk: Disk
) -> None:
    disk = small_disk("400k")
    run = disk / "search"
    command = (
        f"supernet={trained['checkpoint']}",
        f"hydra.run.dir={run}",
        "search.n_trials=16",
        f"search.n_workers={workers}",
        "search.threads=1",
        "search.sampler=random",
        "search.progress=false",
        "search.plots_png=false",
    )
    result = _run("search", *command)
    _one_error(result, f"cannot write {run}/study.db", "no space left on the device")
    url = f"sqlite:///{run}/study.db"
    study = optuna.load_study(study_name=None, storage=url)  # the database is whole
    before = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    assert len(before) < 16

    subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
    again = _run("search", *command)  # room again: the same command finishes the run
    assert again.returncode == 0, again.stderr[-3000:]
    trials = optuna.load_study(study_name=None, storage=url).trials
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}
    assert before <= complete and len(complete) == 16
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert yaml.safe_load((run / "study.yaml").read_text())["run"]["finished"]


@pytest.mark.slow
def test_export_on_a_full_disk_keeps_the_previous_export(
    trained: dict[str, Path], small_disk: Disk
) -> None:
    disk = small_disk("300k")
    out = disk / "best"
    frame = yaml.safe_load((trained["search"] / "study.yaml").read_text())
    assert frame["checkpoint_sha256"]
    small = _run("search.export", str(trained["search"]), "trial=0", f"out={out}", "onnx=false")
    assert small.returncode == 0, small.stderr[-3000:]  # trial 0: the smallest subnet (seeded)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()}
    result = _run(  # trial 1, the largest subnet (0.8 MB of weights), over it
        "search.export", str(trained["search"]), "trial=1", f"out={out}", "overwrite=true"
    )
    _one_error(result, f"cannot write {out}/model", "no space left on the device")
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir()} == digests
    assert sorted(p.name for p in disk.iterdir()) == ["best"]  # no staging directory left
