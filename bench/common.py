"""What the Fashion-MNIST benchmarks share: data, recipes, the two supernets, and running commands.

Every benchmark drives the product's own commands (``python -m supernet.train``, ``python -m
search``, ``python -m search.rank``, ``python -m search.export``) or their Python APIs with the
settings below, so that the README can list the exact commands. Trained supernets and training
runs are cached under ``runs/bench/`` (git-ignored): the ranking, search-quality and
sample-efficiency benchmarks reuse the same supernets, and a rerun reuses finished runs
(``resume=auto``; a run with other settings is refused, never silently reused).

Scale, chosen so that the whole suite runs in about 80 minutes on 2 CPU cores: the ``fashion_mnist``
space's choices (embed 64-96, depth 4-6, 2-4 heads of 24, MLP ratio 2-4) on 7x7 patches instead of
4x4 (``space.patch_size=7``: 16 patches + CLS = 17 tokens instead of 50, ~3x cheaper; the space is
named ``fashion_mnist_p7``; 4.2-23.4 MFLOPs), a 10,000-image training subset, a 2,500-image
validation split carved from the rest of the training set, and the official 10,000-image test
split. One recipe for every training run (conf/train/uniform.yaml's with ``LR`` below: AdamW,
lr 1e-3 with 2 warmup epochs and a cosine, batch 32, label smoothing 0.1, translation + flip),
12 epochs: the supernets (``sandwich_long``: 36), every subnet trained alone from scratch, every
fine-tune. One torch thread per process, two processes.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "results" / "benchmarks"
CACHE = ROOT / "runs" / "bench"

#: The data and space of every Fashion-MNIST benchmark (Hydra overrides of conf/train.yaml).
DATA = ["data=fashion_mnist", "data.train_subset=10000", "data.val_size=2500"]
SPACE = ["space=fashion_mnist", "space.patch_size=7", "space.name=fashion_mnist_p7"]

#: Epochs of every training run: supernets, scratch, fine-tune.
EPOCHS = 12

#: The two supernets, the same recipe and epochs. One sandwich step trains four subnets (the
#: largest, the smallest and two random ones): 4.48 times the FLOPs of a uniform step's one random
#: subnet in this space (11.1 MFLOPs on average), so the sandwich supernet costs ~4.5x the compute.
#: Peak learning rate of every training run. conf/train/uniform.yaml's 3e-3 (tuned on digits)
#: made stand-alone runs of the deeper subnets unstable here (seed-to-seed swings of 4 pt, the
#: largest subnets below the smallest): the "before" rows of the README's ranking table.
LR = 1e-3

SUPERNETS: dict[str, list[str]] = {
    "uniform": ["train=uniform", f"train.epochs={EPOCHS}", f"train.lr={LR}"],
    "sandwich": ["train=sandwich", f"train.epochs={EPOCHS}", f"train.lr={LR}"],
    # Not the same budget: the sandwich supernet trained 3x longer (every subnet inside a supernet
    # gets a fraction of the updates a stand-alone run gets), to see how much of the gap to
    # stand-alone accuracy and of the ranking error is under-training.
    "sandwich_long": ["train=sandwich", f"train.epochs={3 * EPOCHS}", f"train.lr={LR}"],
}

#: The stand-alone recipe (scratch and fine-tune alike): the supernets' own.
STANDALONE_EPOCHS = EPOCHS

#: Processes at once (the machine has two cores) and torch threads per process.
JOBS = 2
THREADS = 1


def machine() -> str:
    """One line naming the machine, for the tables."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {THREADS} thread(s)/process"


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def show(cmd: Sequence[str]) -> str:
    """The command as a user types it (``python -m ...``)."""
    return " ".join(["python", *map(shlex.quote, cmd[1:])])


def run(cmd: Sequence[str], log: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a product command from the repository root; fail with its output's tail."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS)}
    print(f"$ {show(cmd)}", flush=True)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"command failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def run_parallel(cmds: Sequence[Sequence[str]], jobs: int = JOBS) -> list[Any]:
    """Run commands ``jobs`` at a time (each is its own process)."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(run, cmds))


def rel(path: Path) -> str:
    """``path`` relative to the repository root (commands run there), for readable commands."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def supernet_dir(name: str) -> Path:
    return CACHE / f"supernet_{name}"


def supernet_command(name: str) -> list[str]:
    return command(
        "supernet.train",
        *DATA,
        *SPACE,
        *SUPERNETS[name],
        f"threads={THREADS}",
        "resume=auto",
        f"hydra.run.dir={rel(supernet_dir(name))}",
    )


def ensure_supernets(names: Sequence[str] = tuple(SUPERNETS)) -> dict[str, Path]:
    """Train (or finish, or reuse) the named supernets, in parallel; their checkpoints."""
    start = time.perf_counter()
    run_parallel([supernet_command(n) for n in names])
    print(f"supernets {', '.join(names)} ready ({time.perf_counter() - start:.0f} s)")
    return {n: supernet_dir(n) / "supernet.pt" for n in names}


def best_supernet(names: Sequence[str] = tuple(SUPERNETS)) -> str:
    """The supernet the ranking benchmark fine-tunes and the search benchmarks search: the trained
    supernet whose reference subnets (smallest, middle, largest) have the highest
    mean validation accuracy after training: chosen on the validation split only."""
    import pandas as pd

    def score(name: str) -> float:
        last = pd.read_csv(supernet_dir(name) / "metrics.csv").iloc[-1]
        return float(last[[f"val_acc_{r}" for r in ("smallest", "middle", "largest")]].mean())

    return max(names, key=score)


def training_wall_s(name: str) -> float:
    """The supernet's training time (all epochs, validation included) from its metrics.csv."""
    import pandas as pd

    metrics = pd.read_csv(supernet_dir(name) / "metrics.csv")
    return float(metrics["wall_s"].iloc[-1])


def save_png(fig: Any, path: Path) -> list[Path]:
    """Write ``path`` (.png) and the HTML beside it (HTML is git-ignored under results/)."""
    from search.plots import save_figure

    return save_figure(fig, path.with_suffix(".html"), png=True)


def now() -> str:
    """The time, UTC, as the tables write it."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime()) + " UTC"


def record_time(
    name: str, seconds: float, note: str = "", out: Path = OUT, add: bool = False
) -> None:
    """Set ``name``'s wall time (this run) in ``out``/wall_times.csv (the benchmark's --out: a
    smoke run elsewhere leaves results/benchmarks/ alone). ``add``: this run adds to the time
    already recorded (it completes an earlier run), its ``note`` to the earlier note."""
    import pandas as pd

    path = out / "wall_times.csv"
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["benchmark"])
    before = table[table["benchmark"] == name]
    if add and not before.empty:
        seconds += float(before["wall_s"].iloc[0])
        note = f"{before['note'].iloc[0]}; then {note}"
    table = table[table["benchmark"] != name]
    row = {
        "benchmark": name,
        "wall_s": round(seconds, 1),
        "machine": machine(),
        "finished": now(),
        "note": note,
    }
    table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)


def search_and_export(
    checkpoint: Path, run_dir: Path, trials: int, seed: int, *overrides: str
) -> Path:
    """``python -m search`` in ``run_dir`` (reused when it already holds ``trials`` trials), then
    ``python -m search.export`` of its best subnet to ``run_dir/best``; the export dir."""
    from search import read_trials

    done = (run_dir / "trials.csv").is_file() and len(read_trials(run_dir)) >= trials
    if not done:
        run(
            command(
                "search",
                f"supernet={rel(checkpoint)}",
                *overrides,
                f"search.n_trials={trials}",
                "search.progress=false",
                f"seed={seed}",
                f"hydra.run.dir={rel(run_dir)}",
            ),
            log=run_dir / "bench.log",
        )
    out = run_dir / "best"
    run(
        command(
            "search.export",
            rel(run_dir),
            "trial=best",
            f"out={rel(out)}",
            "onnx=false",
            "overwrite=true",
        )
    )
    return out
