"""One run directory, one kind of run.

Every command writes into its Hydra run directory, and most of them write files of the same
names (``metrics.csv`` and ``train.log`` for a supernet's training and a subnet's, Hydra's own
``.hydra/`` copies for all). A command pointed at the directory of another kind of run would mix
its files with that run's or replace them: a fine-tune in a supernet's training directory
replaced the supernet's per-epoch ``metrics.csv``. :func:`claim_run_dir` refuses such a
directory before anything is written (Hydra's ``.hydra/`` copies are put back by
:mod:`supernet.common.cli`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

__all__ = [
    "RUN_KINDS",
    "TRAIN_MODES",
    "RunKind",
    "check_not_a_runs_output",
    "claim_run_dir",
    "claim_sweep_dir",
    "run_kind_of",
]


@dataclass(frozen=True)
class RunKind:
    """``what``: the run in words ("a supernet training run"); ``markers``: the files (or
    directories) only this kind of run writes into its run directory; ``subdir``: the name
    suggested for a run of this kind of its own."""

    what: str
    markers: tuple[str, ...]
    subdir: str
    outputs: tuple[str, ...] = ()  # the directories it writes inside its own (not to replace)


#: Each command's kind of run, by the name its entry point claims with.
RUN_KINDS: dict[str, RunKind] = {
    "supernet": RunKind("a supernet training run", ("supernet.pt",), "supernet"),
    "subnet": RunKind(
        "a subnet training run", ("checkpoint.pt", "result.json"), "retrain", ("subnet",)
    ),
    "search": RunKind("a search run", ("study.yaml", "study.db"), "search"),
    "rank": RunKind("a ranking run", ("rank.yaml", "rank.csv"), "rank"),
    "calibrate": RunKind(
        "a latency calibration run",
        ("latency_profile.yaml", "latency_measurements.csv"),
        "calibrate",
    ),
    "measure": RunKind("a latency measurement run", ("latency_measurement.yaml",), "measure"),
    # written by search.export and supernet.convert (not Hydra runs), into out=: no command
    # claims one, every command refuses one
    "export": RunKind("an export", ("model.safetensors",), "export"),
}

#: The kind of run of ``python -m supernet.train mode=<mode>``.
TRAIN_MODES = {"supernet": "supernet", "finetune": "subnet", "scratch": "subnet"}


def run_kind_of(run_dir: Path, but: str | None = None) -> tuple[str, str] | None:
    """The kind of run ``run_dir`` holds (other than ``but``) and the file that says so; None
    when it holds none."""
    for name, kind in RUN_KINDS.items():
        if name == but:
            continue
        for marker in kind.markers:
            if (run_dir / marker).exists():
                return name, marker
    return None


def _free(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``…: the first that does not exist (a suggestion must
    not be a directory another run has made)."""
    candidate, number = path, 2
    while os.path.lexists(candidate):  # (a broken symbolic link too)
        candidate, number = path.with_name(f"{path.name}-{number}"), number + 1
    return candidate


def claim_run_dir(
    run_dir: str | Path, kind: str, subdir: str | None = None, option: str = "hydra.run.dir"
) -> None:
    """Refuse ``run_dir`` when it holds another kind of run than ``kind`` (a key of
    :data:`RUN_KINDS`), naming it and a directory of its own to use instead: a new ``subdir``
    of it (by default the kind's), given as ``option=``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    found = run_kind_of(run_dir, but=kind)
    if found is None:
        return
    other, marker = found
    own = RUN_KINDS[kind]
    name = subdir or own.subdir
    # beside an export (a run inside it would stop the next export replacing it), else inside
    suggested = run_dir.with_name(f"{run_dir.name}-{name}") if other == "export" else run_dir / name
    raise UserError(
        f"{run_dir} holds {RUN_KINDS[other].what} ({marker}), whose files this "
        f"{own.what.removeprefix('a ')} would mix with or replace; give it a directory of its "
        f"own, e.g. {option}={_free(suggested)}"
    )


def claim_sweep_dir(sweep_dir: str | Path, kind: str, subdir: str | None = None) -> None:
    """:func:`claim_run_dir` for a ``--multirun``: its sweep directory and the job directories
    already in it, before Hydra writes its ``multirun.yaml`` and each job's ``.hydra/``."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return
    for path in [sweep_dir, *sorted(p for p in sweep_dir.iterdir() if p.is_dir())]:
        found = run_kind_of(path, but=kind)
        if found is None:
            continue
        other, marker = found
        own = RUN_KINDS[kind]
        raise UserError(
            f"{path} holds {RUN_KINDS[other].what} ({marker}), whose files a job of this sweep "
            f"of {own.what.removeprefix('a ')}s would mix with or replace; "
            "give the sweep a directory of its own, e.g. "
            f"hydra.sweep.dir={_free(sweep_dir / (subdir or own.subdir))}"
        )


def check_not_a_runs_output(path: Path, name: str) -> None:
    """Refuse to replace ``path`` when it is what a run wrote inside its own directory (a
    fine-tune's ``subnet/`` export, beside the ``result.json`` that reports its accuracy)."""
    found = run_kind_of(path.parent) if path.is_dir() else None
    if found is not None and path.name in RUN_KINDS[found[0]].outputs:
        raise UserError(
            f"{name} is the {path.name}/ of {RUN_KINDS[found[0]].what} in {path.parent}, which "
            "records what it holds; choose a new directory"
        )
