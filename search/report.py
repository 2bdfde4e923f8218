"""``python -m search.report``: one table and one plot across search runs (a sweep's jobs).

    python -m search.report multirun/2026-01-01/12-00-00
    python -m search.report runs/a runs/b out=reports/ab cost=params

Every run dir below the given paths (any dir holding a ``trials.csv``) is read; the tables are
concatenated into one DataFrame with a ``run`` column and one column per override of the runs
(``budget.flops``, ``search.sampler``, ``seed`` ...), written as ``report.csv`` and
``report.parquet``. The summary has one row per combination of the overrides that vary between
runs, seeds pooled: runs, trials, feasible share, best validation accuracy (mean and spread over
seeds) and the best subnet. ``report_pareto.html`` has one panel per budget (the varying
``budget.*`` overrides) with its budget line and, per value of the other overrides (a sampler),
the pooled Pareto front; plotly.js is written once beside it, as ``plotly.min.js``.

Options: out=<dir> (default: the one path given, else ./report), cost=flops|macs|params|
latency_ms (default: the runs' cost axis), png=true, debug=false.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from supernet.common.cli import parse_args, run_cli
from supernet.common.console import plural
from supernet.common.errors import UserError, quoted

from .budget import Budget, BudgetError, parse_amount
from .costs import METRICS, format_cost
from .plots import report_figure, save_figure
from .results import (
    CONTRACT_COLUMNS,
    EXTRA_COLUMNS,
    REQUIRED_COLUMNS,
    all_arch_columns,
    read_trials,
    write_table,
)
from .runner import MANIFEST, read_manifest

__all__ = ["Report", "find_runs", "load_runs", "report_summary", "write_report"]

_OWN_COLUMNS = {*CONTRACT_COLUMNS, *EXTRA_COLUMNS, *all_arch_columns(), "run"}


@dataclass
class ReportOptions:
    out: str | None = None
    cost: str | None = None
    png: bool = True
    debug: bool = False


@dataclass
class Report:
    trials: pd.DataFrame
    summary: pd.DataFrame
    varying: list[str]
    cost: str
    files: list[Path]


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run dirs (holding ``trials.csv``) at or below ``paths``, in a stable order."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"not found: {path}; give the run dir of a `python -m search`")
        if (path / "trials.csv").is_file():
            runs.append(path)
        else:
            runs += sorted(p.parent for p in path.rglob("trials.csv"))
    if not runs:
        raise UserError(
            f"no search runs (dirs with trials.csv) under {', '.join(map(str, paths))}; give "
            "the run dir of a `python -m search` or the root of a --multirun sweep"
        )
    return list(dict.fromkeys(runs))


def _label(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            label = str(path.resolve().relative_to(root.resolve()))
            return label if label != "." else path.resolve().name  # the root itself: its name
        except ValueError:
            pass
    return str(path)


def load_runs(runs: Sequence[Path], root: Path | None = None) -> pd.DataFrame:
    """All runs' trials in one DataFrame, with a ``run`` column (the dir, relative to root)."""
    frames = []
    for run in runs:
        frame = read_trials(run / "trials.csv", required=REQUIRED_COLUMNS)
        frame.insert(0, "run", _label(run, root))
        frames.append(frame)
    trials = pd.concat(frames, ignore_index=True, sort=False)
    for column in override_columns(trials):  # one type per column: numbers, else strings
        try:
            numbers = pd.to_numeric(trials[column])
            whole = numbers.dropna()
            if numbers.dtype.kind == "f" and len(whole) and (whole == whole.round()).all():
                numbers = numbers.astype("Int64")  # 1, not 1.0, where some runs left it unset
            trials[column] = numbers
        except (TypeError, ValueError):
            trials[column] = trials[column].astype("string")
    return trials


def override_columns(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns if c not in _OWN_COLUMNS]


def varying_columns(trials: pd.DataFrame) -> list[str]:
    """Override columns whose value differs between runs."""
    per_run = trials.groupby("run", sort=False).first()
    return [c for c in override_columns(trials) if per_run[c].astype(str).nunique(dropna=False) > 1]


def _groups(
    trials: pd.DataFrame, varying: Sequence[str]
) -> tuple[list[str], list[tuple[tuple[str, ...], pd.DataFrame]]]:
    """The trials per combination of the varying overrides (seeds pooled), in natural order
    (budgets by amount): ``(keys, [(values, trials), ...])``."""
    keys = [c for c in varying if c != "seed"] or ["run"]
    groups = [
        (values if isinstance(values, tuple) else (values,), group)
        for values, group in trials.groupby(
            [trials[k].astype(str) for k in keys], sort=False, dropna=False
        )
    ]
    groups.sort(key=lambda item: tuple(_natural(v) for v in item[0]))
    return keys, groups


def report_summary(trials: pd.DataFrame, varying: Sequence[str]) -> pd.DataFrame:
    """One row per combination of the varying overrides, seeds pooled."""
    keys, groups = _groups(trials, varying)
    rows = []
    for values, group in groups:
        complete = group[group["state"] == "COMPLETE"]
        ok = complete[complete["feasible"].fillna(False) & complete["val_acc"].notna()]
        per_run_best = ok.groupby("run")["val_acc"].max()
        row = dict(zip(keys, values, strict=True))
        row.update(
            runs=group["run"].nunique(),
            trials=len(group),
            feasible=f"{len(ok) / max(len(complete), 1):.0%}",
            best_val_acc=per_run_best.max() if len(per_run_best) else float("nan"),
            mean_best=per_run_best.mean() if len(per_run_best) else float("nan"),
            std_best=per_run_best.std(ddof=0) if len(per_run_best) > 1 else float("nan"),
        )
        if len(ok):
            best = ok.sort_values(["val_acc", "flops"], ascending=[False, True]).iloc[0]
            row.update(
                best_arch=best["arch"],
                best_params=format_cost("params", best["params"]),
                best_flops=format_cost("flops", best["flops"]),
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _natural(value: str) -> tuple[int, float, str]:
    """Sort key: amounts by size (``"500k"`` < ``"2M"``), then anything else by its text."""
    try:
        amount = parse_amount("", value)
    except BudgetError:
        amount = None
    return (0, amount, "") if amount is not None else (1, 0.0, str(value))


def _cost_axis(runs: Sequence[Path], requested: str | None) -> str:
    if requested is not None:
        if requested not in METRICS:
            raise UserError(
                f"cost must be one of {', '.join(METRICS)}, got {quoted(requested)}; pass "
                "cost=flops (or leave it out: the runs' own axis)"
            )
        return requested
    axes = [
        str(read_manifest(r, required=()).get("cost_axis", "flops"))
        for r in runs
        if (r / MANIFEST).is_file()
    ]
    return max(set(axes), key=axes.count) if axes else "flops"


def _is_budget(key: str) -> bool:
    return key == "budget" or key.startswith("budget.")


def _panels(
    trials: pd.DataFrame, varying: Sequence[str], runs: Sequence[Path], root: Path | None
) -> tuple[dict[str, dict[str, pd.DataFrame]], dict[str, list[Budget]]]:
    """The plot's panels: one per budget (the varying ``budget*`` overrides; one panel when
    none varies), each holding a series per value of the other varying overrides (seeds
    pooled), and each panel's budgets as its runs' manifests record them."""
    keys, groups = _groups(trials, varying)
    budget_keys = [k for k in keys if _is_budget(k)]
    per_run: dict[str, Budget] = {}
    for run in runs:
        if (run / MANIFEST).is_file():
            recorded = read_manifest(run, required=()).get("budget")
            # a manifest from another version: no line rather than no report
            with contextlib.suppress(BudgetError):
                if isinstance(recorded, dict):
                    per_run[_label(run, root)] = Budget.from_config(recorded)
    panels: dict[str, dict[str, pd.DataFrame]] = {}
    budgets: dict[str, list[Budget]] = {}
    order = sorted(
        groups,
        key=lambda g: tuple(
            _natural(v) for k, v in zip(keys, g[0], strict=True) if k in budget_keys
        ),
    )
    for values, frame in order:
        pairs = [f"{k}={v}" for k, v in zip(keys, values, strict=True)]
        panel = ", ".join(p for k, p in zip(keys, pairs, strict=True) if k in budget_keys)
        series = ", ".join(p for k, p in zip(keys, pairs, strict=True) if k not in budget_keys)
        panel = panel or "all runs"
        panels.setdefault(panel, {})[series or "Pareto front"] = frame
        for run in frame["run"].unique():
            if run in per_run:
                budgets.setdefault(panel, []).append(per_run[run])
    return panels, budgets


def write_report(
    paths: Sequence[str | Path],
    out: str | Path | None = None,
    cost: str | None = None,
    png: bool = True,
) -> Report:
    """Read every run under ``paths``; write the combined table, summary and plot to ``out``."""
    runs = find_runs(paths)
    root = Path(paths[0]) if len(paths) == 1 else None
    out = Path(out) if out is not None else (root if root is not None else Path("report"))
    trials = load_runs(runs, root)
    varying = varying_columns(trials)
    axis = _cost_axis(runs, cost)
    if axis not in trials.columns or trials[axis].isna().all():
        raise UserError(
            f"cost={axis}: none of these runs' trials has a {axis} value (latency_ms needs a "
            "search with a latency profile); pass cost=flops, macs or params"
        )
    summary = report_summary(trials, varying)
    files = write_table(trials, out / "report")
    panels, budgets = _panels(trials, varying, runs, root)
    files += save_figure(
        report_figure(
            panels,
            axis,
            title=f"validation accuracy vs {axis}: {plural(len(runs), 'run')}",
            budgets=budgets,
        ),
        out / "report_pareto.html",
        png=png,
    )
    return Report(trials, summary, varying, axis, files)


def main(argv: Sequence[str]) -> Report:
    paths, opts = parse_args(argv, ReportOptions, __doc__ or "")
    if not paths:
        raise UserError("give the search run dirs or a multirun dir: python -m search.report <dir>")
    report = write_report(paths, opts.out, opts.cost, opts.png)
    n_runs = report.trials["run"].nunique()
    print(f"{plural(n_runs, 'run')}, {plural(len(report.trials), 'trial')}")
    if report.varying:
        print(f"varying between runs: {', '.join(report.varying)}")
    shown = report.summary.copy()
    for column in ("best_val_acc", "mean_best", "std_best"):
        shown[column] = [f"{v:.4f}" if pd.notna(v) else "-" for v in shown[column]]
    print(shown.to_string(index=False))
    print("written: " + ", ".join(str(p) for p in report.files))
    return report


def cli() -> None:
    """The console script (``vitnas-report``): the same as ``python -m search.report``."""
    run_cli(main)
    sys.exit(0)


if __name__ == "__main__":
    cli()
