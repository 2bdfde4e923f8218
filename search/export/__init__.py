"""One searched subnet as a standalone model directory (``python -m search.export``).

    python -m search.export <search run dir> trial=best out=exported/best
    python -m search.export <search run dir> trial=17 out=exported/t17
    python -m search.export <search run dir> trial=best flops=2M out=exported/2mflops

Options (``key=value``):
  trial=best|<number>  best: the most accurate feasible trial; with a cost bound (flops=,
                       params=, macs=, latency_ms=, SI suffixes allowed) the most accurate one
                       within it, i.e. the Pareto point at that cost. Default best.
  out=<dir>            where to write; default <run dir>/export/trial_<number>
  onnx=auto|true|false also write model.onnx, checked against PyTorch with onnxruntime
                       (max |difference| <= 1e-4); auto: when onnx and onnxruntime are installed
  overwrite=false      replace an earlier export in out (never other files)
  allow_infeasible=false  export a trial=<number> that broke the budget (never evaluated)
  supernet=<path>      the searched checkpoint, if it moved (its sha256 must match)
  debug=false          show the traceback of an error

The directory holds subnet.yaml (space, subnet, preprocessing, metadata), model.safetensors,
README.md and model.onnx (its metadata holds the preprocessing too); ``supernet.load_subnet(out)``
returns a ready ``nn.Module`` and ``supernet.load_preprocessing(out)`` what turns raw images into
its input. It is built beside
``out`` and renamed into place, so an error or a kill never leaves half of one.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from supernet import Space, Subnet
from supernet.checkpoint import checkpoint_preprocessing, file_sha256, load_supernet
from supernet.common.atomic import (
    check_not_cwd,
    check_target_dir,
    move_into_place,
    remove_stale_staging,
    staging_dir,
    writing,
)
from supernet.common.errors import CheckpointError, UserError
from supernet.common.rundir import check_not_a_runs_output
from supernet.common.torchfile import damaged_torch_file
from supernet.onnx_export import onnx_wanted
from supernet.saved_model import EXPORT_TARGET, read_subnet_yaml, save_subnet

from ..results import REQUIRED_COLUMNS, read_trials
from ..runner import read_manifest
from .pick import pick_trial
from .readme import render_readme

__all__ = ["ExportResult", "export_subnet", "pick_trial"]


@dataclass
class ExportResult:
    directory: Path
    trial: int
    subnet: Subnet
    metadata: dict[str, Any]
    reason: str


def _check_target(out: Path, overwrite: bool) -> None:
    check_target_dir(out, overwrite, f"out={out}", "overwrite=true", *EXPORT_TARGET)


def _refuse_own_inputs(out: Path, run_dir: Path, checkpoint: Path) -> None:
    """An export replaces its whole ``out`` directory: ``out`` must not be, or hold, the searched
    run or the checkpoint (``out=<training run>`` with ``overwrite=true`` deleted both)."""
    target = out.resolve()
    for what, path in (
        ("the searched run", run_dir.resolve()),
        ("the checkpoint's directory", checkpoint.resolve().parent),
    ):
        if target == path or target in path.parents:
            how = "is" if target == path else "holds"
            raise UserError(
                f"out={out} {how} {what} ({path}), which the export would replace; choose a new "
                f"directory for the export, e.g. out={run_dir / 'export' / 'best'}"
            )


def export_subnet(
    run_dir: str | Path,
    trial: int | str = "best",
    out: str | Path | None = None,
    *,
    max_costs: Mapping[str, float] | None = None,
    onnx: bool | str = "auto",
    overwrite: bool = False,
    supernet: str | Path | None = None,
    allow_infeasible: bool = False,
) -> ExportResult:
    """Export one trial of a search run (see the module docstring)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        checkpoint = run_dir.suffix in (".pt", ".pth")
        raise UserError(
            f"{run_dir} is {'a supernet checkpoint' if checkpoint else 'a file'}, not a search "
            "run dir; give the directory a `python -m search` wrote (its hydra.run.dir)"
            + (f", after searching it: python -m search supernet={run_dir}" if checkpoint else "")
        )
    if not run_dir.is_dir():
        raise UserError(
            f"search run dir not found: {run_dir}; give the directory a `python -m search` wrote "
            "(its hydra.run.dir)"
        )
    manifest = read_manifest(run_dir)
    if not (run_dir / "trials.csv").is_file() and not (run_dir / "trials.parquet").is_file():
        raise UserError(
            f"no trials table in {run_dir}: the search stopped before writing it; run the same "
            "search again with search.n_trials=0 to write it"
        )
    frame = read_trials(run_dir, required=REQUIRED_COLUMNS)
    row, reason = pick_trial(frame, trial, max_costs, allow_infeasible)
    number = int(row["number"])
    searched_space = Space.from_dict(manifest["space"])
    try:
        subnet = searched_space.subnet_from_row(row)
    except (ValueError, TypeError, KeyError) as exc:  # (a JSON list of the wrong things, say)
        raise UserError(
            f"trial {number}'s subnet in {run_dir}'s trials table is invalid ({exc}); restore "
            "the table, or write it again with the same search command and search.n_trials=0"
        ) from None
    out = Path(out) if out is not None else run_dir / "export" / f"trial_{number}"
    checkpoint = Path(supernet) if supernet is not None else Path(manifest["checkpoint"])
    if checkpoint.is_dir():
        if supernet is not None and not (checkpoint / "supernet.pt").exists():
            raise CheckpointError(
                f"supernet={supernet} is a directory without a supernet.pt; pass "
                "supernet=<the searched checkpoint file, or its training run's directory>"
            )
        checkpoint = checkpoint / "supernet.pt"
    _refuse_own_inputs(out, run_dir, checkpoint)
    check_not_cwd(out, f"out={out}")
    check_not_a_runs_output(out, f"out={out}")
    with writing(out):
        remove_stale_staging(out)  # what an export killed half-way left
    _check_target(out, overwrite)
    onnx_wanted(onnx, quiet=True)  # a bad value, or onnx=true without its packages: fail now

    if checkpoint.exists() and not checkpoint.is_file():
        raise CheckpointError(
            f"{checkpoint} is not a regular file (a pipe, a device or a socket); pass "
            "supernet=<the searched checkpoint file>"
        )
    if not checkpoint.is_file():
        raise CheckpointError(
            f"the searched checkpoint {checkpoint} is gone; pass supernet=<its new path>"
        )
    sha = file_sha256(checkpoint)
    if sha != manifest["checkpoint_sha256"]:
        hashes = f"sha256 {sha[:12]}..., expected {manifest['checkpoint_sha256'][:12]}..."
        if damaged_torch_file(checkpoint):
            raise CheckpointError(
                f"{checkpoint} is damaged, truncated or corrupt ({hashes}); restore the searched "
                "checkpoint from a copy, or pass supernet=<an undamaged copy>"
            )
        if supernet is None:  # the file the search read, changed in place since
            raise CheckpointError(
                f"{checkpoint}, the checkpoint this run searched, has changed since ({hashes}); "
                "restore it from a copy, or pass supernet=<a copy of the searched one>"
            )
        raise CheckpointError(
            f"{checkpoint} is not the checkpoint this run searched ({hashes}); pass "
            "supernet=<the searched one>"
        )
    net, payload = load_supernet(checkpoint)
    space = net.space
    model = net.extract(subnet)
    preprocessing = checkpoint_preprocessing(payload, checkpoint)

    val_acc = None if pd.isna(row["val_acc"]) else float(row["val_acc"])
    latency = None if pd.isna(row["latency_ms"]) else float(row["latency_ms"])
    metadata: dict[str, Any] = {
        "source": {
            "run_dir": str(run_dir.resolve()),
            "study": manifest["study_name"],
            "trial": number,
            "checkpoint": str(checkpoint.resolve()),
            "checkpoint_sha256": sha,
        },
        "picked": reason,
        "val_acc": val_acc,
        "val_images": manifest.get("val_images"),
        "costs": {
            "params": int(row["params"]),
            "macs": int(row["macs"]),
            "flops": int(row["flops"]),
            "latency_ms": latency,
            # what the prediction is for (the profile's device, batch size, threads)
            "latency_target": manifest.get("latency") if latency is not None else None,
        },
        "budget": manifest.get("budget"),
        "data": manifest.get("data"),
        "space": space.to_dict(),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }

    with_onnx = onnx_wanted(onnx)
    work = staging_dir(out)
    try:
        staged = save_subnet(
            model,
            space,
            work / "subnet",
            metadata=metadata,
            extra_files={
                "README.md": lambda meta: render_readme(subnet, meta, with_onnx, preprocessing)
            },
            shown_as=out,
            preprocessing=preprocessing,
            onnx=with_onnx,
        )
        metadata = read_subnet_yaml(staged)[2]  # with its onnx: record
        _check_target(out, overwrite)  # in case it appeared meanwhile
        with writing(out):
            move_into_place(staged, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(out, number, subnet, metadata, reason)
