"""The ranking table, its statistics, the one-line verdict and the scatter plot.

One row per subnet (cheapest first): its architecture and costs, the accuracy of its inherited
weights on the validation and test splits, and the test (and last-epoch validation) accuracy
after fine-tuning from those weights and after training from scratch with the same recipe.

The headline statistic is Kendall's τ (and Spearman's ρ) between inherited-weight *validation*
accuracy, which is what the search sees, and stand-alone *test* accuracy, which is what a user
gets. The gaps compare like with like: inherited and stand-alone accuracy on the test split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import kendalltau, spearmanr

from supernet import Space, Subnet, complexity

from .pick import slug

__all__ = [
    "COLUMNS",
    "RELIABLE_TAU",
    "rank_figure",
    "rank_stats",
    "rank_table",
    "table_text",
    "verdict",
]

#: τ from which a supernet's ranking counts as reliable (the issue's target; weight-sharing
#: papers report 0.5 to 0.8).
RELIABLE_TAU = 0.8
PARTLY_RELIABLE_TAU = 0.5

COLUMNS = [
    "subnet",
    "arch",
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "params",
    "macs",
    "flops",
    "inherited_val_acc",
    "inherited_test_acc",
    "finetune_val_acc",
    "finetune_test_acc",
    "scratch_val_acc",
    "scratch_test_acc",
    "finetune_wall_s",
    "scratch_wall_s",
]


def rank_table(
    space: Space, subnets: Sequence[Subnet], results: Sequence[Mapping[str, Any]]
) -> pd.DataFrame:
    """One row per subnet from the jobs' results (kinds inherit / finetune / scratch)."""
    by_kind: dict[tuple[str, Subnet], Mapping[str, Any]] = {
        (r["kind"], r["subnet"]): r for r in results
    }
    rows = []
    for s in subnets:
        inherit = by_kind.get(("inherit", s))
        finetune = by_kind.get(("finetune", s))
        scratch = by_kind[("scratch", s)]
        if inherit is None:  # the fine-tune run measured the inherited weights before training
            assert finetune is not None
            inherited = (finetune["initial_val_acc"], finetune["initial_test_acc"])
        else:
            inherited = (inherit["val_acc"], inherit["test_acc"])
        cost = complexity.breakdown(space, s)
        rows.append(
            {
                "subnet": slug(s),
                "arch": str(s),
                **s.to_row(),
                "params": cost.params,
                "macs": cost.macs,
                "flops": cost.flops,
                "inherited_val_acc": inherited[0],
                "inherited_test_acc": inherited[1],
                "finetune_val_acc": finetune["val_acc"] if finetune else math.nan,
                "finetune_test_acc": finetune["test_acc"] if finetune else math.nan,
                "scratch_val_acc": scratch["val_acc"],
                "scratch_test_acc": scratch["test_acc"],
                "finetune_wall_s": finetune["wall_s"] if finetune else math.nan,
                "scratch_wall_s": scratch["wall_s"],
            }
        )
    arch = [c for c in space.subnet_cls.row_columns if c not in COLUMNS]  # the family's others
    at = COLUMNS.index("mlp_ratio") + 1
    return pd.DataFrame(rows, columns=[*COLUMNS[:at], *arch, *COLUMNS[at:]])


def _tau(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    if x.isna().any() or y.isna().any() or x.nunique() < 2 or y.nunique() < 2:
        return math.nan, math.nan  # undefined: a constant (or missing) ranking
    result = kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def _rho(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    if x.isna().any() or y.isna().any() or x.nunique() < 2 or y.nunique() < 2:
        return math.nan, math.nan
    result = spearmanr(x, y)
    return float(result.statistic), float(result.pvalue)


def _pt(values: pd.Series) -> float:
    return float(values.mean() * 100) if values.notna().all() else math.nan


def rank_stats(table: pd.DataFrame) -> dict[str, float]:
    """τ, ρ and accuracy gaps (in percentage points) of a ranking table."""
    scratch = table["scratch_test_acc"]
    tau, tau_p = _tau(table["inherited_val_acc"], scratch)
    rho, rho_p = _rho(table["inherited_val_acc"], scratch)
    gap = table["inherited_test_acc"] - scratch
    return {
        "subnets": len(table),
        "kendall_tau": tau,
        "kendall_p": tau_p,
        "spearman_rho": rho,
        "spearman_p": rho_p,
        # the same, inherited accuracy measured on the test split
        "kendall_tau_inherited_test": _tau(table["inherited_test_acc"], scratch)[0],
        # does a short fine-tune rank like stand-alone training?
        "kendall_tau_finetune": _tau(table["finetune_test_acc"], scratch)[0],
        # inherited minus stand-alone test accuracy, on the test split (like with like)
        "mean_gap_pt": _pt(gap),
        "mean_abs_gap_pt": _pt(gap.abs()),
        "max_abs_gap_pt": float(gap.abs().max() * 100),
        # inherited validation accuracy (what the search sees) minus stand-alone test accuracy
        "mean_gap_val_pt": _pt(table["inherited_val_acc"] - scratch),
        "mean_abs_gap_val_pt": _pt((table["inherited_val_acc"] - scratch).abs()),
        "mean_finetune_minus_scratch_pt": _pt(table["finetune_test_acc"] - scratch),
        "mean_finetune_minus_inherited_pt": _pt(
            table["finetune_test_acc"] - table["inherited_test_acc"]
        ),
    }


def verdict(stats: Mapping[str, float]) -> str:
    """One line: how far the supernet's ranking can be trusted, and the accuracy gap."""
    tau, rho, n = stats["kendall_tau"], stats["spearman_rho"], int(stats["subnets"])
    if math.isnan(tau):
        return (
            f"verdict: Kendall τ undefined over {n} subnets (an accuracy column is constant); "
            "train longer or pick subnets further apart"
        )
    if tau >= RELIABLE_TAU:
        trust = "reliable: inherited weights rank subnets as stand-alone training does"
    elif tau >= PARTLY_RELIABLE_TAU:
        trust = "partly reliable: the coarse order holds, close subnets swap places"
    else:
        trust = "unreliable: inherited accuracy says little about stand-alone accuracy"
    gap = stats["mean_gap_pt"]
    return (
        f"verdict: Kendall τ = {tau:.2f} (Spearman ρ = {rho:.2f}) over {n} subnets, {trust} "
        f"(target τ ≥ {RELIABLE_TAU}); inherited test accuracy is "
        f"{abs(gap):.2f} pt {'above' if gap >= 0 else 'below'} stand-alone on average "
        f"(mean |gap| {stats['mean_abs_gap_pt']:.2f} pt)"
    )


def table_text(table: pd.DataFrame) -> str:
    """The table for the terminal: accuracies in %, FLOPs in millions."""
    shown = pd.DataFrame(
        {
            "subnet": table["arch"],
            "MFLOPs": table["flops"] / 1e6,
            "params_M": table["params"] / 1e6,
            "inherited_val": table["inherited_val_acc"] * 100,
            "inherited_test": table["inherited_test_acc"] * 100,
            "finetune_test": table["finetune_test_acc"] * 100,
            "scratch_test": table["scratch_test_acc"] * 100,
        }
    )
    shown = shown.dropna(axis=1, how="all")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}")


def rank_figure(table: pd.DataFrame, stats: Mapping[str, float], title: str = "") -> go.Figure:
    """Stand-alone test accuracy (scratch, and fine-tuned) against inherited validation accuracy,
    one point per subnet coloured by FLOPs, with the diagonal."""
    x = table["inherited_val_acc"] * 100
    hover = [
        f"{row.arch}<br>{row.flops / 1e6:.2f} MFLOPs, {row.params / 1e6:.3f} M params<br>"
        f"inherited val {row.inherited_val_acc:.2%}, test {row.inherited_test_acc:.2%}<br>"
        f"scratch test {row.scratch_test_acc:.2%}"
        + (
            f", fine-tuned test {row.finetune_test_acc:.2%}"
            if not math.isnan(row.finetune_test_acc)
            else ""
        )
        for row in table.itertuples(index=False)
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=x,
            y=table["scratch_test_acc"] * 100,
            mode="markers",
            name="trained from scratch",
            marker={
                "size": 11,
                "color": table["flops"] / 1e6,
                "colorscale": "Viridis",
                "colorbar": {"title": "MFLOPs"},
                "line": {"width": 1, "color": "black"},
            },
            hovertext=hover,
            hoverinfo="text",
        )
    )
    if table["finetune_test_acc"].notna().any():
        fig.add_trace(
            go.Scatter(
                x=x,
                y=table["finetune_test_acc"] * 100,
                mode="markers",
                name="fine-tuned from inherited weights",
                marker={"size": 9, "symbol": "diamond-open", "color": "crimson"},
                hovertext=hover,
                hoverinfo="text",
            )
        )
    values = np.concatenate(
        [x.to_numpy(), (table[["scratch_test_acc", "finetune_test_acc"]] * 100).to_numpy().ravel()]
    )
    values = values[~np.isnan(values)]
    low, high = float(values.min()) - 0.5, float(values.max()) + 0.5
    fig.add_trace(
        go.Scatter(
            x=[low, high],
            y=[low, high],
            mode="lines",
            name="y = x",
            line={"dash": "dash", "color": "gray"},
            hoverinfo="skip",
        )
    )
    fig.update_layout(
        title=title
        or (
            f"inherited vs stand-alone accuracy: Kendall τ = {stats['kendall_tau']:.2f}, "
            f"Spearman ρ = {stats['spearman_rho']:.2f} ({int(stats['subnets'])} subnets)"
        ),
        xaxis_title="inherited-weight validation accuracy (%)",
        yaxis_title="stand-alone test accuracy (%)",
        template="plotly_white",
        legend={"yanchor": "bottom", "y": 0.01, "xanchor": "right", "x": 0.99},
    )
    return fig
