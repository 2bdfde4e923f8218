"""Which trial an export takes: a trial by number, or the most accurate feasible one within
optional cost bounds (the Pareto point at that cost)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from supernet.common.errors import UserError, quoted

from ..costs import format_cost

__all__ = ["pick_trial"]


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
    unknown = [m for m in max_costs if ok[m].isna().all()]
    if unknown:  # a latency bound on a search that predicted no latency: no bound can help
        raise UserError(
            f"this run has no {', '.join(unknown)} for its trials (its search predicted none); "
            f"drop {', '.join(f'{m}=' for m in unknown)}, or calibrate a latency profile "
            "(`python -m search.latency calibrate`) and search again"
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
