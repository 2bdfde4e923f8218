"""Trials as a pandas table: ``trials.csv`` / ``trials.parquet`` and the terminal summary.

One row per trial, whatever its state. The contract columns (DESIGN.md) come first::

    number, state, embed_dim, depth, num_heads, mlp_ratio, params, macs, flops, latency_ms,
    val_acc, feasible, pareto

then the family's other architecture columns (a Swin subnet's ``window_size``), ``arch`` (the
subnet's short name, ``D48-L3-H[1/2/4]-M[2/4/3]`` for a ViT), ``measured_latency_ms`` (with
``search.measure_latency=true``: the evaluated subnet timed as the profile was), ``violation``
(the worst relative budget overrun, 0 when feasible), ``duration_s`` (the whole trial),
``eval_s`` (its evaluation), ``retried_from`` (the trial a heartbeat retry replaces),
``duplicate_of`` (for a subnet proposed again: the trial whose accuracy it reuses, as it was not
evaluated twice; empty otherwise), ``datetime_start``, ``datetime_complete``, ``study``,
``family``, and one column per command-line override of the run (``budget.flops``,
``search.sampler``, ``seed``).

The architecture columns are the family's (``Subnet.to_row``): for a ViT ``embed_dim`` and
``depth`` are integers and ``num_heads`` and ``mlp_ratio`` JSON lists; for a Swin subnet every
one of them is a JSON list (per stage, or per stage and block). ``Subnet.from_row`` (or
``space.subnet_from_row``) reads a row back.
``val_acc`` is NaN for a subnet that was never evaluated (infeasible, failed or still running).
``pareto`` marks the feasible evaluated trials that no other one beats on both accuracy and the
cost axis.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from supernet import Space, complexity, family_names, get_family
from supernet.common.atomic import atomic_write
from supernet.common.errors import UserError, quoted
from supernet.space import DEFAULT_FAMILY

from .budget import Budget
from .costs import format_cost
from .objective import subnet_from_params
from .optuna_adapter import constraints_of

__all__ = [
    "CONTRACT_COLUMNS",
    "TrialsTableError",
    "all_arch_columns",
    "arch_columns",
    "pareto_mask",
    "read_trials",
    "summary_table",
    "summary_text",
    "trials_frame",
    "write_table",
]

CONTRACT_COLUMNS = [
    "number",
    "state",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "params",
    "macs",
    "flops",
    "latency_ms",
    "val_acc",
    "feasible",
    "pareto",
]
EXTRA_COLUMNS = [
    "arch",
    "measured_latency_ms",
    "violation",
    "duration_s",
    "eval_s",
    "retried_from",
    "duplicate_of",
    "datetime_start",
    "datetime_complete",
    "study",
    "family",
]


def pareto_mask(accuracy: Sequence[float], cost: Sequence[float]) -> np.ndarray:
    """True for the points no other point dominates (accuracy at least as high and cost at
    most as high, one of them strictly). NaN points are never on the front."""
    acc = np.asarray(accuracy, dtype=float)
    cst = np.asarray(cost, dtype=float)
    mask = np.zeros(len(acc), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(acc) | np.isnan(cst)))
    order = valid[np.lexsort((-acc[valid], cst[valid]))]  # by cost, then accuracy descending
    best_cheaper = -math.inf
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and cst[order[end]] == cst[order[start]]:
            end += 1
        group = order[start:end]
        top = acc[group].max()
        if top > best_cheaper:
            mask[group[acc[group] == top]] = True
        best_cheaper = max(best_cheaper, top)
        start = end
    return mask


def arch_columns(space: Space) -> list[str]:
    """The architecture columns of ``space``'s subnets (``Subnet.to_row``): the contract's four,
    then the family's others."""
    columns = space.subnet_cls.row_columns
    return [c for c in CONTRACT_COLUMNS if c in columns] + [
        c for c in columns if c not in CONTRACT_COLUMNS
    ]


def all_arch_columns() -> set[str]:
    """The architecture columns of every family's subnets."""
    return {c for name in family_names() for c in get_family(name).subnet_cls.row_columns}


def _row(trial: FrozenTrial, space: Space, budget: Budget, columns: list[str]) -> dict[str, Any]:
    attrs = trial.user_attrs
    subnet = subnet_from_params(trial.params, space)
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        # empty for a trial killed before it chose its subnet
        **(subnet.to_row() if subnet else dict.fromkeys(columns)),
        "arch": str(subnet) if subnet else None,
    }
    cost: dict[str, float] = dict.fromkeys(("params", "macs", "flops"), math.nan)
    if subnet is not None and space.contains(subnet):
        c = complexity.breakdown(space, subnet)
        cost = {"params": c.params, "macs": c.macs, "flops": c.flops}
    cost["latency_ms"] = float(attrs.get("latency_ms", math.nan))
    row.update(cost)
    row["measured_latency_ms"] = float(attrs.get("measured_latency_ms", math.nan))
    complete = trial.state == TrialState.COMPLETE
    acc = attrs.get("val_acc")
    row["val_acc"] = float(acc) if complete and acc is not None else math.nan
    constraints = constraints_of(trial)
    if not constraints and budget and subnet is not None:
        constraints = budget.violations(cost)
    if (constraints and any(v != v for v in constraints.values())) or subnet is None:
        row["feasible"], row["violation"] = None, math.nan
    else:
        worst = max(constraints.values(), default=0.0)
        row["feasible"], row["violation"] = worst <= 0, max(worst, 0.0)
    start, end = trial.datetime_start, trial.datetime_complete
    row["duration_s"] = (end - start).total_seconds() if start and end else math.nan
    row["eval_s"] = float(attrs["eval_s"]) if "eval_s" in attrs else math.nan
    row["retried_from"] = trial.system_attrs.get("failed_trial")
    row["duplicate_of"] = attrs.get("duplicate_of")
    row["datetime_start"] = start
    row["datetime_complete"] = end
    return row


def trials_frame(
    study: optuna.Study,
    space: Space,
    budget: Budget,
    cost_axis: str = "flops",
    overrides: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Every trial of ``study`` as one row (see the module docstring for the columns)."""
    arch = arch_columns(space)
    rows = [_row(t, space, budget, arch) for t in study.get_trials(deepcopy=False)]
    family_only = [c for c in arch if c not in CONTRACT_COLUMNS]
    frame = pd.DataFrame(rows, columns=[*CONTRACT_COLUMNS, *family_only, *EXTRA_COLUMNS[:-2]])
    frame["study"] = study.study_name
    frame["family"] = space.family
    for column in ("latency_ms", "measured_latency_ms", "val_acc", "violation"):
        frame[column] = frame[column].astype(float)
    integers = [c for c, v in space.smallest().to_row().items() if isinstance(v, int)]
    for column in (*integers, "params", "macs", "flops", "retried_from", "duplicate_of"):
        frame[column] = frame[column].astype("Float64").astype("Int64")
    frame["feasible"] = frame["feasible"].astype("boolean")
    frame["pareto"] = pareto_mask(
        frame["val_acc"].where(frame["feasible"].fillna(False)), frame[cost_axis]
    )
    for key, value in (overrides or {}).items():
        frame[key] = value
    return frame


def write_table(frame: pd.DataFrame, path_stem: str | Path) -> list[Path]:
    """Write ``<stem>.csv`` and ``<stem>.parquet`` atomically; returns the paths written."""
    stem = Path(path_stem)
    csv, parquet = stem.with_suffix(".csv"), stem.with_suffix(".parquet")
    atomic_write(csv, lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(parquet, lambda tmp: _parquet_safe(frame).to_parquet(tmp, index=False))
    return [csv, parquet]


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every column of mixed Python types (runs of two families in one report:
    a ViT's ``embed_dim`` 64 beside a Swin's ``[24, 48]``, written as JSON text) as text, the
    one type Parquet can store them all as; as in the CSV, a reader decodes them per family."""
    mixed = [
        column
        for column in frame.columns
        if frame[column].dtype == object
        and len({type(v) for v in frame[column] if not _missing(v)}) > 1
    ]
    if not mixed:
        return frame
    out = frame.copy()
    for column in mixed:
        out[column] = [
            None if _missing(v) else v if isinstance(v, str) else json.dumps(v, default=_plain)
            for v in frame[column]
        ]
    return out


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _plain(value: object) -> object:
    """A numpy scalar or array as the Python value JSON can write."""
    return value.tolist() if hasattr(value, "tolist") else str(value)  # type: ignore[union-attr]


class TrialsTableError(UserError):
    """A trials table (trials.csv / .parquet) that is damaged or not one this tool wrote."""


#: Columns a trials table must hold to be read back (export, report).
REQUIRED_COLUMNS = [*CONTRACT_COLUMNS, "arch"]
_INT_COLUMNS = ("params", "macs", "flops", "retried_from", "duplicate_of")
#: Columns newer than some tables on disk: read as empty when absent.
_ADDED_COLUMNS = ("duplicate_of",)
_FLOAT_COLUMNS = ("latency_ms", "val_acc")
_BOOL_COLUMNS = ("feasible", "pareto")


def _table_error(path: Path, problem: str) -> TrialsTableError:
    return TrialsTableError(
        f"{path} is not a trials table this tool can read: {problem}; restore it from a copy, "
        "or write it again from the study with the same search command and search.n_trials=0"
    )


def _first_bad(frame: pd.DataFrame, column: str, ok: pd.Series) -> str:
    """``column`` and the first row (1-based, after the header) whose value is not ``ok``."""
    row = frame.index[~ok][0]
    return f"column {column!r} holds {quoted(frame.at[row, column], 60)} in row {int(row) + 1}"


def _is_json_list(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return isinstance(json.loads(value), list)
    except ValueError:
        return False


def _check_table(frame: pd.DataFrame, path: Path, required: Sequence[str]) -> pd.DataFrame:
    """The table's columns and values as :func:`trials_frame` writes them, or one error."""
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise _table_error(path, f"it lacks the column(s) {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    for column in _ADDED_COLUMNS:
        if column not in frame:
            frame[column] = pd.array([pd.NA] * len(frame), dtype="Int64")
    families = set(frame["family"].dropna()) if "family" in frame else set()
    if len(families) > 1 or not families <= set(family_names()):
        shown = ", ".join(sorted(map(str, families)))
        raise _table_error(path, f"its family column names {quoted(shown, 60)}")
    subnet_cls = get_family(families.pop() if families else DEFAULT_FAMILY).subnet_cls
    lists = subnet_cls.row_json_columns  # the family's architecture columns that hold JSON
    integers = (*(c for c in subnet_cls.row_columns if c not in lists), *_INT_COLUMNS)
    for column in (*integers, *_FLOAT_COLUMNS, "number"):
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() & frame[column].notna()
        if column in integers or column == "number":
            bad |= values.notna() & (values % 1 != 0)
        if column == "number":
            bad |= values.isna()
        if bad.any():
            raise _table_error(path, _first_bad(frame, column, ~bad))
        frame[column] = values.astype("Int64") if column in (*integers, "number") else values
    for column in _BOOL_COLUMNS:
        if column not in frame:
            continue
        text = frame[column].astype("string").str.lower()
        ok = frame[column].isna() | text.isin(["true", "false"])
        if not ok.all():
            raise _table_error(path, _first_bad(frame, column, ok))
        frame[column] = text.map({"true": True, "false": False}).astype("boolean")
    if "arch" not in frame or "state" not in frame:
        return frame
    chosen = frame["arch"].notna()
    for column in lists:
        if column not in frame:
            continue
        ok = ~chosen | frame[column].map(_is_json_list)
        if not ok.all():
            raise _table_error(path, f"{_first_bad(frame, column, ok)}, not a JSON list")
    complete = chosen & (frame["state"] == "COMPLETE")
    for column in (*subnet_cls.row_columns, "params", "macs", "flops"):
        if column not in frame:
            continue
        ok = ~complete | frame[column].notna()
        if not ok.all():
            row = frame.index[~ok][0]
            raise _table_error(
                path,
                f"trial {frame.at[row, 'number']} is COMPLETE but has no {column} (row "
                f"{int(row) + 1})",
            )
    return frame


def read_trials(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """Read a ``trials.csv`` (or ``.parquet``, or a run dir holding one) with its dtypes.

    A table that is damaged (a ``required`` column missing, garbage in a numeric column, a
    broken JSON list, a COMPLETE trial without its costs) is a :class:`TrialsTableError` naming
    the file and the first bad value (export and report require :data:`REQUIRED_COLUMNS`).
    A table written before ``duplicate_of`` existed reads with that column empty."""
    path = Path(path)
    if path.is_dir():
        path = (
            path / "trials.parquet" if (path / "trials.parquet").is_file() else path / "trials.csv"
        )
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except FileNotFoundError:
        raise TrialsTableError(
            f"no trials table at {path}; give the run dir of a `python -m search`"
        ) from None
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise _table_error(path, f"it cannot be parsed ({detail})") from None
    return _check_table(frame, path, required)


# -- terminal summary ------------------------------------------------------------------------------
def summary_table(frame: pd.DataFrame, cost_axis: str, multi_objective: bool) -> pd.DataFrame:
    """The rows the terminal shows: the Pareto set (by cost) or the 10 best feasible subnets."""
    done = frame[frame["feasible"].fillna(False) & frame["val_acc"].notna()]
    done = done.sort_values("number").drop_duplicates("arch")  # a subnet proposed twice: once
    if multi_objective:
        rows = done[done["pareto"]].sort_values([cost_axis, "val_acc"])
    else:
        rows = done.sort_values(["val_acc", cost_axis], ascending=[False, True]).head(10)
    columns = ["number", "arch", "params", "macs", "flops"]
    if frame["latency_ms"].notna().any():
        columns.append("latency_ms")
    return rows[[*columns, "val_acc", "pareto"]]


def _format(table: pd.DataFrame) -> str:
    shown = table.copy()
    for metric in ("params", "macs", "flops"):
        if metric in shown:
            shown[metric] = [format_cost(metric, v) for v in shown[metric]]
    if "latency_ms" in shown:
        shown["latency_ms"] = [f"{v:.3g}" for v in shown["latency_ms"]]
    shown["val_acc"] = [f"{v:.4f}" for v in shown["val_acc"]]
    shown["pareto"] = ["*" if v else "" for v in shown["pareto"]]
    return shown.rename(columns={"number": "trial"}).to_string(index=False)


def summary_text(
    frame: pd.DataFrame,
    *,
    cost_axis: str,
    multi_objective: bool,
    budget: Budget,
    elapsed_s: float | None = None,
    new_trials: int | None = None,
) -> str:
    """Counts, then the Pareto set or the best feasible subnets as a table."""
    states = frame["state"].value_counts()
    complete = frame["state"] == "COMPLETE"
    feasible_rows = complete & frame["feasible"].fillna(False)
    feasible = int(feasible_rows.sum())
    distinct = frame.loc[feasible_rows, "arch"].nunique()
    infeasible = int((complete & ~frame["feasible"].fillna(True)).sum())
    parts = [
        f"{feasible} feasible" + (f" ({distinct} distinct subnets)" if distinct < feasible else ""),
        f"{infeasible} over budget (not evaluated)",
    ]
    parts += [f"{int(n)} {s.lower()}" for s, n in states.items() if s != "COMPLETE"]
    lines = [f"{len(frame)} trials in the study: " + ", ".join(parts)]
    if elapsed_s is not None and new_trials:
        lines.append(
            f"this run: {new_trials} trials in {elapsed_s:.1f} s "
            f"({60 * new_trials / max(elapsed_s, 1e-9):.1f} trials/min)"
        )
    timed = frame[complete & frame["duration_s"].notna() & frame["eval_s"].notna()]
    if len(timed) and timed["duration_s"].sum() > 0:
        share = timed["eval_s"].sum() / timed["duration_s"].sum()
        lines.append(
            f"trial time: {100 * share:.0f}% evaluating, {100 * (1 - share):.0f}% outside "
            "(sampler, cost model, storage)"
        )
    lines.append(f"budget: {budget.describe()}")
    table = summary_table(frame, cost_axis, multi_objective)
    if table.empty:
        lines.append(
            "no feasible subnet evaluated yet"
            + ("; the budget may exclude every subnet the sampler tried" if budget else "")
        )
        return "\n".join(lines)
    title = (
        f"Pareto set (val_acc vs {cost_axis}; FLOPs = 2 x MACs):"
        if multi_objective
        else f"best feasible subnets (* = on the val_acc/{cost_axis} Pareto front):"
    )
    lines += [title, _format(table)]
    return "\n".join(lines)
