"""``python -m search.export``: one searched subnet as a standalone model directory.

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
  overwrite=false      replace a non-empty out dir
  allow_infeasible=false  export a trial=<number> that broke the budget (never evaluated)
  supernet=<path>      the searched checkpoint, if it moved (its sha256 must match)
  debug=false          show the traceback of an error

The directory holds subnet.yaml (space, subnet, metadata), model.safetensors, README.md and
model.onnx; ``supernet.load_subnet(out)`` returns a ready ``nn.Module``. It is built beside
``out`` and renamed into place, so an error or a kill never leaves half of one.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from supernet import Space, Subnet
from supernet.atomic import (
    check_target_dir,
    move_into_place,
    remove_stale_staging,
    staging_dir,
    writing,
)
from supernet.checkpoint import file_sha256, load_supernet
from supernet.errors import CheckpointError, UserError, quoted
from supernet.saved_model import save_subnet

from ._cli import parse_args, run_cli
from .budget import parse_amount
from .costs import METRICS, format_cost
from .results import REQUIRED_COLUMNS, read_trials
from .runner import read_manifest

__all__ = ["ExportResult", "export_onnx", "export_subnet", "pick_trial"]

ONNX_TOLERANCE = 1e-4


@dataclass
class ExportOptions:
    trial: Any = "best"
    out: str | None = None
    flops: Any = None
    params: Any = None
    macs: Any = None
    latency_ms: Any = None
    onnx: Any = "auto"
    overwrite: bool = False
    allow_infeasible: bool = False
    supernet: str | None = None
    debug: bool = False


@dataclass
class ExportResult:
    directory: Path
    trial: int
    subnet: Subnet
    metadata: dict[str, Any]
    reason: str


def _trial_number(trial: object) -> int:
    """``trial=`` as a trial number: an integer (5, "5", 5.0), never a fraction (5.9)."""
    if isinstance(trial, float) and trial.is_integer():
        return int(trial)
    if isinstance(trial, int) and not isinstance(trial, bool):
        return trial
    if isinstance(trial, str) and trial.strip().isdigit():
        return int(trial)
    raise UserError(
        f"trial must be best or a trial number, got {quoted(trial)}; pass trial=best or a whole "
        "number (the number column of trials.csv)"
    )


def pick_trial(
    frame: pd.DataFrame,
    trial: int | str = "best",
    max_costs: Mapping[str, float] | None = None,
    allow_infeasible: bool = False,
) -> tuple[pd.Series, str]:
    """The row of ``trial`` (a number, or ``best``) and a sentence saying why it was picked.

    A trial given by number must be COMPLETE, and feasible unless ``allow_infeasible``.
    """
    max_costs = dict(max_costs or {})
    if trial != "best":
        number = _trial_number(trial)
        rows = frame[frame["number"] == number]
        if rows.empty:
            raise UserError(
                f"no trial {number} in this run (trials {frame['number'].min()} to "
                f"{frame['number'].max()}); pass one of those, or trial=best"
            )
        row = rows.iloc[0]
        if pd.isna(row["arch"]):
            raise UserError(f"trial {number} ({row['state']}) has no complete subnet to export")
        if row["state"] != "COMPLETE":
            raise UserError(
                f"trial {number} ({row['arch']}) is {row['state']}, not COMPLETE: it was never "
                "evaluated; export a COMPLETE trial (trial=best picks the most accurate one)"
            )
        if pd.notna(row["feasible"]) and not bool(row["feasible"]) and not allow_infeasible:
            raise UserError(
                f"trial {number} ({row['arch']}) broke the search's budget (by "
                f"{float(row.get('violation', float('nan'))):.0%}) and was never evaluated; "
                "export a feasible "
                "trial (trial=best), or pass allow_infeasible=true to export it anyway"
            )
        if max_costs:
            raise UserError(
                "cost bounds (flops=, params= ...) only apply to trial=best; drop them, or pass "
                "trial=best"
            )
        note = "" if pd.notna(row["val_acc"]) else " (never evaluated: it was over budget)"
        return row, f"trial {number} as asked{note}"
    ok = frame[frame["feasible"].fillna(False) & frame["val_acc"].notna()]
    if ok.empty:
        raise UserError(
            "no feasible evaluated trial in this run to export; run more trials (the same "
            "search command adds them), or export an over-budget one with trial=<number> "
            "allow_infeasible=true"
        )
    within = ok
    for metric, limit in max_costs.items():
        within = within[within[metric] <= limit]
    limits = ", ".join(f"{m} <= {format_cost(m, v)}" for m, v in max_costs.items())
    if within.empty:
        cheapest = ", ".join(f"{m} {format_cost(m, ok[m].min())}" for m in max_costs)
        raise UserError(
            f"no feasible evaluated trial with {limits}; the cheapest has {cheapest}: raise the "
            "bound"
        )
    axis = next(iter(max_costs), "flops")
    row = within.sort_values(["val_acc", axis, "number"], ascending=[False, True, True]).iloc[0]
    scope = f" with {limits}" if limits else ""
    return row, (
        f"the most accurate of {within['arch'].nunique()} feasible evaluated subnets{scope}"
    )


def export_onnx(model: torch.nn.Module, space: Space, path: Path) -> float:
    """Write ``model`` as ONNX (dynamic batch; input ``images``, output ``logits``) and return
    the largest absolute difference from PyTorch on random images (batches of 1 and 4)."""
    import onnxruntime

    model = model.eval()
    example = torch.randn(2, space.in_chans, space.img_size, space.img_size)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,  # one self-contained file (fine below 2 GB of weights)
        verbose=False,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    generator = torch.Generator().manual_seed(0)
    for batch in (1, 4):
        x = torch.randn(batch, space.in_chans, space.img_size, space.img_size, generator=generator)
        (got,) = session.run(["logits"], {"images": x.numpy()})
        with torch.inference_mode():
            want = model(x)
        worst = max(worst, float((torch.from_numpy(got) - want).abs().max()))
    return worst


def _onnx_available() -> str | None:
    """None when ONNX export can run, else what is missing."""
    missing = []
    for name in ("onnx", "onnxruntime", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return ", ".join(missing) or None


def _readme(subnet: Subnet, meta: Mapping[str, Any], has_onnx: bool) -> str:
    costs = meta["costs"]
    lines = [
        f"# Subnet {subnet}",
        "",
        f"Searched subnet (trial {meta['source']['trial']} of study "
        f"`{meta['source']['study']}`), with the weights it inherits from the supernet.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in subnet.to_dict().items()),
        f"| params | {costs['params']:,} |",
        f"| MACs / FLOPs per image | {costs['macs']:,} / {costs['flops']:,} (FLOPs = 2 x MACs) |",
    ]
    if costs.get("latency_ms") is not None:
        lines.append(f"| predicted latency | {costs['latency_ms']:.3g} ms |")
    acc = meta.get("val_acc")
    lines += [
        f"| validation accuracy (inherited weights) | "
        f"{'not evaluated' if acc is None else f'{acc:.4f}'} |",
        f"| source checkpoint | `{meta['source']['checkpoint']}` |",
        f"| checkpoint sha256 | `{meta['source']['checkpoint_sha256']}` |",
        "",
        "```python",
        "from supernet import load_subnet",
        "",
        'model = load_subnet("<this directory>")  # a torch.nn.Module in eval mode',
        "```",
        "",
        "Fine-tune it (or train it from scratch) before reporting test accuracy: "
        "`python -m supernet.train mode=finetune subnet=<this directory>`.",
    ]
    if has_onnx:
        lines += [
            "",
            "`model.onnx`: input `images` (batch, "
            f"{meta['space']['in_chans']}, {meta['space']['img_size']}, "
            f"{meta['space']['img_size']}), output `logits`; matches PyTorch within "
            f"{meta['onnx']['max_abs_diff']:.1e}.",
        ]
    return "\n".join(lines) + "\n"


def _check_target(out: Path, overwrite: bool) -> None:
    check_target_dir(out, overwrite, f"out={out}", "overwrite=true")


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
    if not run_dir.is_dir():
        raise UserError(f"search run dir not found: {run_dir}")
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
        checkpoint = checkpoint / "supernet.pt"
    _refuse_own_inputs(out, run_dir, checkpoint)
    with writing(out):
        remove_stale_staging(out)  # what an export killed half-way left
    _check_target(out, overwrite)
    onnx_mode = str(onnx).lower()
    if onnx_mode not in ("auto", "true", "false"):
        raise UserError(f"onnx must be auto, true or false, got {quoted(onnx)}; pass onnx=auto")

    if not checkpoint.is_file():
        raise CheckpointError(
            f"the searched checkpoint {checkpoint} is gone; pass supernet=<its new path>"
        )
    sha = file_sha256(checkpoint)
    if sha != manifest["checkpoint_sha256"]:
        raise CheckpointError(
            f"{checkpoint} is not the checkpoint this run searched (sha256 {sha[:12]}..., "
            f"expected {manifest['checkpoint_sha256'][:12]}...); pass supernet=<the searched one>"
        )
    net, _ = load_supernet(checkpoint)
    space = net.space
    model = net.extract(subnet)

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
        },
        "budget": manifest.get("budget"),
        "data": manifest.get("data"),
        "space": space.to_dict(),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }

    missing = _onnx_available() if onnx_mode != "false" else None
    if onnx_mode == "true" and missing:
        raise UserError(f"onnx=true needs {missing}: pip install 'vitnas[onnx]'")
    if onnx_mode == "auto" and missing:
        print(f"note: no model.onnx: {missing} not installed (pip install 'vitnas[onnx]')")
    with_onnx = onnx_mode != "false" and not missing

    work = staging_dir(out)
    try:
        if with_onnx:
            with writing(out / "model.onnx"):
                diff = export_onnx(model, space, work / "model.onnx")
            if diff > ONNX_TOLERANCE:
                raise UserError(
                    f"the ONNX model differs from PyTorch by {diff:.2e} (> {ONNX_TOLERANCE:g}); "
                    "export without it with onnx=false"
                )
            metadata["onnx"] = {
                "file": "model.onnx",
                "max_abs_diff": diff,
                "checked_with": "onnxruntime",
            }
        staged = save_subnet(
            model,
            space,
            work / "subnet",
            metadata=metadata,
            extra_files={"README.md": _readme(subnet, metadata, with_onnx)},
            shown_as=out,
        )
        if with_onnx:
            (work / "model.onnx").replace(staged / "model.onnx")
        _check_target(out, overwrite)  # in case it appeared meanwhile
        with writing(out):
            move_into_place(staged, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ExportResult(out, number, subnet, metadata, reason)


def main(argv: Sequence[str]) -> ExportResult:
    positional, opts = parse_args(argv, ExportOptions, __doc__ or "")
    if len(positional) != 1:
        raise UserError(
            "give one search run dir: python -m search.export <run dir> trial=best|<number> "
            "out=<dir> (see --help)"
        )
    max_costs = {m: v for m in METRICS if (v := parse_amount(m, getattr(opts, m))) is not None}
    result = export_subnet(
        positional[0],
        opts.trial,
        opts.out,
        max_costs=max_costs,
        onnx=opts.onnx,
        overwrite=opts.overwrite,
        supernet=opts.supernet,
        allow_infeasible=opts.allow_infeasible,
    )
    meta = result.metadata
    acc = meta["val_acc"]
    print(
        f"picked trial {result.trial}: {result.subnet}, "
        f"val_acc {'n/a' if acc is None else f'{acc:.4f}'}, "
        f"{format_cost('params', meta['costs']['params'])}, "
        f"{format_cost('flops', meta['costs']['flops'])} ({result.reason})"
    )
    files = sorted(p.name for p in result.directory.iterdir())
    print(f"exported to {result.directory}: {', '.join(files)}")
    print(f'load it with: supernet.load_subnet("{result.directory}")')
    return result


if __name__ == "__main__":
    run_cli(main)
    sys.exit(0)
