"""The ranking table, its statistics, the verdicts and the plot.

One row per subnet (cheapest first): its architecture and costs, the accuracy of its inherited
weights on the validation and test splits, the test (and last-epoch validation) accuracy after
fine-tuning from those weights and after training from scratch with the same recipe — the mean
over the stand-alone seeds, their standard deviation and one column per seed — and the score and
cost in seconds of every proxy (:mod:`search.rank.proxies`).

The headline statistic is Kendall's τ (and Spearman's ρ) between inherited-weight *validation*
accuracy, which is what the search sees, and stand-alone *test* accuracy (the seeds' mean), which
is what a user gets. Every proxy is ranked against the same reference; the seed-to-seed τ
(:mod:`search.rank.noise`) says how far that reference can be trusted. The gaps compare like with
like: inherited and stand-alone accuracy on the test split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from scipy.stats import kendalltau, spearmanr

from supernet import Space, Subnet, complexity

from .noise import (
    MEASURABLE_TAU,
    SIGNIFICANCE,
    chance_p,
    difference_interval,
    pairwise_tau,
    split_half_tau,
)
from .pick import slug
from .proxies import PROXIES, ProxyScores

__all__ = [
    "COLUMNS",
    "RELIABLE_TAU",
    "SEED_COLUMN",
    "noise_verdict",
    "proxy_column",
    "proxy_comparison",
    "proxy_verdict",
    "rank_figure",
    "rank_stats",
    "rank_table",
    "ranker_stats",
    "rankers_text",
    "table_text",
    "verdict",
]

#: The two-sided p of Kendall's τ below which an agreement is not put down to chance.
SIGNIFICANT_P = 0.05
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
    "scratch_test_std",
    "finetune_wall_s",
    "scratch_wall_s",
]

#: One column per stand-alone seed (after :data:`COLUMNS` and the family's own columns).
SEED_COLUMN = "scratch_test_acc_seed{}"


def proxy_column(name: str) -> str:
    """The column of a proxy's scores: the cost columns for ``params`` and ``flops`` (already in
    the table), ``proxy_<name>`` for the others; its seconds are in ``proxy_<name>_s``."""
    return name if name in ("params", "flops") else f"proxy_{name}"


def _seeds(table: pd.DataFrame) -> list[str]:
    prefix = SEED_COLUMN.format("")
    return [c for c in table.columns if c.startswith(prefix)]


def rank_table(
    space: Space,
    subnets: Sequence[Subnet],
    results: Sequence[Mapping[str, Any]],
    proxies: ProxyScores | None = None,
    latency_ms: Sequence[float] | None = None,
) -> pd.DataFrame:
    """One row per subnet from the jobs' results (kinds inherit / finetune / scratch; a scratch
    result's ``seed`` names its seed) and the proxies' scores (in the order of ``subnets``);
    ``latency_ms``, the predicted latencies of a latency band, after the other costs."""
    by_kind: dict[tuple[str, Subnet], Mapping[str, Any]] = {
        (r["kind"], r["subnet"]): r for r in results if r["kind"] != "scratch"
    }
    scratch_runs: dict[Subnet, dict[int, Mapping[str, Any]]] = {}
    for r in results:
        if r["kind"] == "scratch":
            scratch_runs.setdefault(r["subnet"], {})[int(r.get("seed", 0))] = r
    seeds = sorted({seed for runs in scratch_runs.values() for seed in runs})
    rows = []
    for i, s in enumerate(subnets):
        inherit = by_kind.get(("inherit", s))
        finetune = by_kind.get(("finetune", s))
        runs = [scratch_runs[s][seed] for seed in seeds]
        test = np.array([r["test_acc"] for r in runs], dtype=float)
        if inherit is None:  # the fine-tune run measured the inherited weights before training
            assert finetune is not None
            inherited = (finetune["initial_val_acc"], finetune["initial_test_acc"])
        else:
            inherited = (inherit["val_acc"], inherit["test_acc"])
        cost = complexity.breakdown(space, s)
        row = {
            "subnet": slug(s),
            "arch": str(s),
            **s.to_row(),
            "params": cost.params,
            "macs": cost.macs,
            "flops": cost.flops,
            **({"latency_ms": float(latency_ms[i])} if latency_ms is not None else {}),
            "inherited_val_acc": inherited[0],
            "inherited_test_acc": inherited[1],
            "finetune_val_acc": finetune["val_acc"] if finetune else math.nan,
            "finetune_test_acc": finetune["test_acc"] if finetune else math.nan,
            "scratch_val_acc": float(np.mean([r["val_acc"] for r in runs])),
            "scratch_test_acc": float(test.mean()),
            "scratch_test_std": float(test.std(ddof=1)) if len(test) > 1 else math.nan,
            "finetune_wall_s": finetune["wall_s"] if finetune else math.nan,
            "scratch_wall_s": float(sum(r["wall_s"] for r in runs)),
            **{SEED_COLUMN.format(n): r["test_acc"] for n, r in zip(seeds, runs, strict=True)},
        }
        for name in proxies.scores if proxies else ():
            assert proxies is not None
            if proxy_column(name) not in row:  # params and flops: already the (integer) counts
                row[proxy_column(name)] = proxies.scores[name][i]
            row[f"proxy_{name}_s"] = proxies.seconds[name][i]
        rows.append(row)
    arch = [c for c in space.subnet_cls.row_columns if c not in COLUMNS]  # the family's others
    at = COLUMNS.index("mlp_ratio") + 1
    extra = [SEED_COLUMN.format(seed) for seed in seeds]
    for name in proxies.scores if proxies else ():
        extra += [c for c in (proxy_column(name), f"proxy_{name}_s") if c not in COLUMNS]
    columns = [*COLUMNS[:at], *arch, *COLUMNS[at:]]
    if latency_ms is not None:
        columns.insert(columns.index("flops") + 1, "latency_ms")
    return pd.DataFrame(rows, columns=[*columns, *extra])


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
    """τ, ρ and accuracy gaps (in percentage points) of a ranking table, and the seed-to-seed τ
    of its stand-alone reference (NaN with fewer than two seeds)."""
    scratch = table["scratch_test_acc"]
    tau, tau_p = _tau(table["inherited_val_acc"], scratch)
    rho, rho_p = _rho(table["inherited_val_acc"], scratch)
    gap = table["inherited_test_acc"] - scratch
    seeds = table[_seeds(table)].to_numpy(dtype=float)
    return {
        "subnets": len(table),
        # the stand-alone reference: its seeds and their agreement (search.rank.noise)
        "seeds": seeds.shape[1],
        "seed_tau_pairwise": pairwise_tau(seeds),
        "seed_tau_split_half": split_half_tau(seeds),
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
    p = stats.get("kendall_p", math.nan)
    if tau >= PARTLY_RELIABLE_TAU and not p <= SIGNIFICANT_P:
        trust = (
            f"inconclusive: over so few subnets a τ this high arises by chance (p = {p:.2f}); "
            "rank more subnets (k=8 or more)"
        )
    elif tau >= RELIABLE_TAU:
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


def ranker_stats(
    table: pd.DataFrame, proxies: Sequence[str], supernet_cost_s: float = math.nan
) -> pd.DataFrame:
    """One row per ranker — the supernet (inherited validation accuracy), then each proxy — with
    Kendall τ (two-sided p), Spearman ρ against the stand-alone test accuracy (the seeds' mean)
    and what the ranker cost in seconds (the supernet: its training; a proxy: all its subnets)."""
    scratch = table["scratch_test_acc"]
    rows = []
    for name in ["supernet", *proxies]:
        if name == "supernet":
            x = table["inherited_val_acc"]
            kind, source, cost = "supernet", "inherited-weight validation accuracy", supernet_cost_s
        else:
            x = table[proxy_column(name)]
            kind, source = PROXIES[name].kind, PROXIES[name].source
            cost = float(table[f"proxy_{name}_s"].sum())
        t, p = _tau(x, scratch)
        r, _ = _rho(x, scratch)
        rows.append(
            {
                "ranker": name,
                "kind": kind,
                "source": source,
                "kendall_tau": t,
                "kendall_p": p,
                "spearman_rho": r,
                "cost_s": cost,
            }
        )
    return pd.DataFrame(rows)


def proxy_comparison(table: pd.DataFrame, rankers: pd.DataFrame) -> dict[str, Any]:
    """The best proxy (highest τ) and the supernet's τ minus its, with a 90% paired bootstrap
    interval over the subnets (``search.rank.noise.difference_interval``)."""
    proxies = rankers[(rankers["ranker"] != "supernet") & rankers["kendall_tau"].notna()]
    if proxies.empty:
        return {"best_proxy": None}
    best = proxies.sort_values("kendall_tau", ascending=False, kind="stable").iloc[0]
    diff, low, high = difference_interval(
        table["inherited_val_acc"], table[proxy_column(best["ranker"])], table["scratch_test_acc"]
    )
    return {
        "best_proxy": str(best["ranker"]),
        "best_proxy_tau": float(best["kendall_tau"]),
        "supernet_minus_best_proxy": diff,
        "supernet_minus_best_proxy_low": low,
        "supernet_minus_best_proxy_high": high,
    }


def noise_verdict(stats: Mapping[str, Any]) -> str:
    """One line: whether the stand-alone reference is measurable, and whether the supernet's τ
    stands out from the noise (of the reference, and of a random order)."""
    tau, p, n = stats["kendall_tau"], stats["kendall_p"], int(stats["seeds"])
    ceiling = stats["seed_tau_split_half"]
    if n < 2 or math.isnan(ceiling):
        return (
            f"noise: {n} stand-alone seed(s), so the noise ceiling is unknown; pass seeds=[0,1,2] "
            "to measure it"
        )
    seeds = (
        f"the stand-alone seeds agree at τ = {ceiling:.2f} (split-half over {n} seeds; pairwise "
        f"{stats['seed_tau_pairwise']:.2f})"
    )
    if ceiling < MEASURABLE_TAU:
        return (
            f"noise: {seeds}, below {MEASURABLE_TAU}: the reference is too noisy to judge the "
            f"supernet (τ = {tau:.2f}) or any proxy; train longer (train.epochs) or add seeds"
        )
    subnets = int(stats.get("subnets", 0))
    chance = chance_p(ceiling, subnets)
    if chance >= SIGNIFICANCE:
        return (
            f"noise: {seeds}, but with {subnets} subnets a random order agrees as well "
            f"{chance:.0%} of the time: no ranker can be judged (the supernet's τ = {tau:.2f}); "
            "rank more subnets (k)"
        )
    if math.isnan(tau) or math.isnan(p) or p >= SIGNIFICANCE or tau <= 0:
        return (
            f"noise: the supernet's τ = {tau:.2f} cannot be told apart from a random order "
            f"(p = {p:.2g}); {seeds}"
        )
    where = "above" if tau >= ceiling else "below"
    return (
        f"noise: the supernet's τ = {tau:.2f} (p = {p:.2g}) is {where} the noise ceiling; {seeds}"
    )


def proxy_verdict(stats: Mapping[str, Any]) -> str:
    """One line: does the supernet rank better than the best proxy?"""
    best = stats.get("best_proxy")
    if not best:
        return "proxies: none ranked (proxies=[]), or every proxy is constant over these subnets"
    diff = stats["supernet_minus_best_proxy"]
    low, high = stats["supernet_minus_best_proxy_low"], stats["supernet_minus_best_proxy_high"]
    head = f"proxies: the best proxy is {best} (τ = {stats['best_proxy_tau']:.2f})"
    if math.isnan(diff):
        return f"{head}; the supernet's τ is undefined"
    interval = f"τ difference {diff:+.2f}, 90% bootstrap interval {low:+.2f} to {high:+.2f}"
    if low > 0:
        return f"{head}; the supernet beats it ({interval})"
    if high < 0:
        return f"{head}; it beats the supernet ({interval})"
    return f"{head}; the supernet cannot be told apart from it ({interval})"


def rankers_text(rankers: pd.DataFrame) -> str:
    """The rankers for the terminal: τ, p, ρ and cost."""
    shown = rankers[["ranker", "kendall_tau", "kendall_p", "spearman_rho", "cost_s", "source"]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.3g}")


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
            "scratch_std": table["scratch_test_std"] * 100,
        }
    )
    shown = shown.dropna(axis=1, how="all")
    return shown.to_string(index=False, float_format=lambda v: f"{v:.2f}")


def rank_figure(
    table: pd.DataFrame,
    stats: Mapping[str, Any],
    rankers: pd.DataFrame | None = None,
    title: str = "",
) -> go.Figure:
    """Left: stand-alone test accuracy (the seeds' mean, scratch; and fine-tuned) against inherited
    validation accuracy, one point per subnet coloured by FLOPs, with the diagonal. Right (with
    ``rankers``): Kendall τ and Spearman ρ of the supernet and of every proxy, and the noise
    ceiling (the seeds' split-half τ)."""
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
    fig = (
        make_subplots(
            rows=1,
            cols=2,
            column_widths=[0.58, 0.42],
            horizontal_spacing=0.16,  # room for the rankers' names
            subplot_titles=("inherited vs stand-alone accuracy", "rank correlation"),
        )
        if rankers is not None
        else go.Figure()
    )
    left = {"row": 1, "col": 1} if rankers is not None else {}
    fig.add_trace(
        go.Scatter(
            x=x,
            y=table["scratch_test_acc"] * 100,
            mode="markers",
            name="trained from scratch"
            + (" (mean ± std of seeds)" if table["scratch_test_std"].notna().any() else ""),
            marker={
                "size": 11,
                "color": table["flops"] / 1e6,
                "colorscale": "Viridis",
                # at the figure's right edge: between the panels it covered the rankers' names
                "colorbar": {"title": "MFLOPs", "x": 1.02, "thickness": 14},
                "line": {"width": 1, "color": "black"},
            },
            hovertext=hover,
            hoverinfo="text",
            error_y={"type": "data", "array": table["scratch_test_std"] * 100, "visible": True}
            if table["scratch_test_std"].notna().any()
            else None,
        ),
        **left,
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
            ),
            **left,
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
        ),
        **left,
    )
    if rankers is not None:
        _ranker_bars(fig, rankers, stats)
    fig.update_layout(
        title=title
        or (
            f"supernet ranking: Kendall τ = {stats['kendall_tau']:.2f}, Spearman ρ = "
            f"{stats['spearman_rho']:.2f} ({int(stats['subnets'])} subnets)"
        ),
        template="plotly_white",
        # below the panels, in a row: inside them it covered points and the rankers' bars
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "center", "x": 0.5},
        margin={"b": 200},
    )
    fig.update_xaxes(title_text="inherited-weight validation accuracy (%)", **left)
    fig.update_yaxes(title_text="test accuracy (%)", **left)
    return fig


def _ranker_bars(fig: go.Figure, rankers: pd.DataFrame, stats: Mapping[str, Any]) -> None:
    names = list(rankers["ranker"])
    colors = ["crimson" if n == "supernet" else "steelblue" for n in names]
    hover = [
        f"{row.ranker}: {row.source}<br>τ {row.kendall_tau:.2f} (p {row.kendall_p:.2g}), "
        f"ρ {row.spearman_rho:.2f}<br>cost {row.cost_s:.1f} s"
        for row in rankers.itertuples(index=False)
    ]
    fig.add_trace(
        go.Bar(
            y=names,
            x=rankers["kendall_tau"],
            orientation="h",
            name="Kendall τ (solid bars)",
            marker={"color": colors},
            hovertext=hover,
            hoverinfo="text",
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Bar(
            y=names,
            x=rankers["spearman_rho"],
            orientation="h",
            name="Spearman ρ (pale bars)",
            marker={"color": colors, "opacity": 0.45},
            hovertext=hover,
            hoverinfo="text",
        ),
        row=1,
        col=2,
    )
    ceiling = stats.get("seed_tau_split_half", math.nan)
    if ceiling == ceiling:  # not NaN: two seeds or more
        fig.add_vline(
            x=ceiling,
            line_dash="dash",
            line_color="gray",
            row=1,
            col=2,
        )
        fig.add_trace(  # the line's legend entry (a label on the panel met a bar or the colour bar)
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"noise ceiling: seeds' split-half τ {ceiling:.2f}",
                line={"dash": "dash", "color": "gray"},
            ),
            row=1,
            col=2,
        )
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="with stand-alone accuracy", range=[-1, 1], row=1, col=2)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
