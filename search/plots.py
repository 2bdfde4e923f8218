"""Plotly figures: accuracy vs cost with the Pareto front, and the optimisation history.

Every figure is written as self-contained HTML (plotly.js inlined: opens offline, mails as one
file) and as PNG when kaleido and a Chromium are available; otherwise one notice line says how to
get PNGs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from supernet.common.atomic import atomic_write
from supernet.common.console import say

from .budget import Budget
from .costs import UNITS
from .results import pareto_mask

__all__ = ["history_figure", "pareto_figure", "report_figure", "save_figure"]

_SCALES = {"params": 1e6, "macs": 1e6, "flops": 1e6, "latency_ms": 1.0}
# kaleido and the browser driver it uses log every step at INFO, which Hydra apps print.
for _name in ("kaleido", "choreographer", "logistro"):
    logging.getLogger(_name).setLevel(logging.WARNING)
_PNG_NOTICE_SHOWN = False


def axis_title(metric: str) -> str:
    if metric == "latency_ms":
        return "predicted latency (ms)"
    note = " (= 2 x MACs)" if metric == "flops" else ""
    return f"{UNITS.get(metric, metric)} (millions){note}"


def _hover(frame: pd.DataFrame) -> list[str]:
    text = []
    for row in frame.itertuples(index=False):
        lines = [
            f"trial {row.number}: {row.arch}",
            f"embed {row.embed_dim}, depth {row.depth}",
            f"heads {row.num_heads}",
            f"mlp ratio {row.mlp_ratio}",
        ]
        window = getattr(row, "window_size", None)  # a Swin subnet's windows
        if isinstance(window, str):
            lines.append(f"window {window}")
        lines += [
            f"params {row.params / 1e6:.3f} M, MACs {row.macs / 1e6:.3f} M, "
            f"FLOPs {row.flops / 1e6:.3f} M",
        ]
        if pd.notna(row.latency_ms):
            lines.append(f"latency {row.latency_ms:.3g} ms")
        lines.append(
            f"val acc {row.val_acc:.4f}" if pd.notna(row.val_acc) else "not evaluated (over budget)"
        )
        text.append("<br>".join(lines))
    return text


def _front(frame: pd.DataFrame, cost: str) -> tuple[list[float], list[float]]:
    """The Pareto points of ``frame`` (its evaluated feasible trials), cheapest first; drawn
    with ``line_shape="hv"`` they make the staircase."""
    front = frame[pareto_mask(frame["val_acc"], frame[cost])].sort_values(cost)
    return (front[cost] / _SCALES[cost]).tolist(), front["val_acc"].tolist()


def _budget_lines(fig: go.Figure, budget: Budget | None, cost: str) -> None:
    bound = budget.bound(cost) if budget else None
    if bound is None:
        return
    for value, label in ((bound.high, "budget"), (bound.low, "lower bound")):
        if value is not None:
            fig.add_vline(
                x=value / _SCALES[cost],
                line_dash="dash",
                line_color="gray",
                annotation_text=label,
                annotation_position="top",
            )


def pareto_figure(
    frame: pd.DataFrame, cost: str = "flops", budget: Budget | None = None, title: str = ""
) -> go.Figure:
    """Validation accuracy vs ``cost``: feasible trials, the Pareto front, and over-budget
    subnets (never evaluated) as crosses along the bottom; hover shows the architecture."""
    done = frame[frame["state"] == "COMPLETE"]
    ok = done[done["feasible"].fillna(False) & done["val_acc"].notna()]
    over = done[~done["feasible"].fillna(True)]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ok[cost] / _SCALES[cost],
            y=ok["val_acc"],
            mode="markers",
            name=f"feasible ({len(ok)})",
            marker={"color": qualitative.Plotly[0], "size": 8, "opacity": 0.7},
            hovertext=_hover(ok),
            hoverinfo="text",
        )
    )
    xs, ys = _front(ok, cost)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines+markers",
            name=f"Pareto front ({len(xs)})",
            line={"color": qualitative.Plotly[1], "width": 2, "shape": "hv"},
            marker={"size": 10, "symbol": "diamond"},
            hoverinfo="skip",
        )
    )
    if len(over):
        floor = ok["val_acc"].min() if len(ok) else 0.0
        fig.add_trace(
            go.Scatter(
                x=over[cost] / _SCALES[cost],
                y=[floor] * len(over),
                mode="markers",
                name=f"over budget, not evaluated ({len(over)})",
                marker={"color": "gray", "symbol": "x", "size": 7, "opacity": 0.6},
                hovertext=_hover(over),
                hoverinfo="text",
            )
        )
    _budget_lines(fig, budget, cost)
    fig.update_layout(
        title=title or f"validation accuracy vs {UNITS.get(cost, cost)}",
        xaxis_title=axis_title(cost),
        yaxis_title="validation accuracy (inherited weights)",
        template="plotly_white",
        hovermode="closest",
    )
    return fig


def history_figure(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Accuracy of every evaluated trial by trial number, the best so far, and over-budget
    trials as crosses (they cost no evaluation)."""
    frame = frame.sort_values("number")
    ok = frame[frame["val_acc"].notna()]
    over = frame[(frame["state"] == "COMPLETE") & ~frame["feasible"].fillna(True)]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=ok["number"],
            y=ok["val_acc"],
            mode="markers",
            name="feasible trial",
            hovertext=_hover(ok),
            hoverinfo="text",
        )
    )
    fig.add_trace(
        go.Scatter(x=ok["number"], y=ok["val_acc"].cummax(), mode="lines", name="best so far")
    )
    if len(over):
        floor = ok["val_acc"].min() if len(ok) else 0.0
        fig.add_trace(
            go.Scatter(
                x=over["number"],
                y=[floor] * len(over),
                mode="markers",
                name="over budget (not evaluated)",
                marker={"color": "gray", "symbol": "x"},
                hovertext=_hover(over),
                hoverinfo="text",
            )
        )
    fig.update_layout(
        title=title or "optimisation history",
        xaxis_title="trial",
        yaxis_title="validation accuracy (inherited weights)",
        template="plotly_white",
    )
    return fig


def report_figure(
    frames: Mapping[str, pd.DataFrame],
    cost: str = "flops",
    title: str = "",
    styles: Mapping[str, tuple[int, int]] | None = None,
) -> go.Figure:
    """One plot across runs: per label (a budget and sampler, seeds pooled), its feasible trials
    (faint) and the Pareto front of all of them. ``styles`` gives each label a (colour, dash)
    index, e.g. a colour per budget and a dash per sampler; by default every label a colour.

    Labels are drawn last to first, so that fronts listed first (small budgets, whose fronts
    the larger budgets' fronts cover) stay visible; the legend keeps the given order."""
    fig = go.Figure()
    palette = qualitative.Plotly + qualitative.D3
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    items = list(frames.items())
    for rank, (label, frame) in reversed(list(enumerate(items))):
        color_index, dash_index = (styles or {}).get(label, (rank, 0))
        color = palette[color_index % len(palette)]
        ok = frame[frame["feasible"].fillna(False) & frame["val_acc"].notna()]
        fig.add_trace(
            go.Scatter(
                x=ok[cost] / _SCALES[cost],
                y=ok["val_acc"],
                mode="markers",
                name=label,
                legendgroup=label,
                showlegend=False,
                marker={"color": color, "size": 6, "opacity": 0.35},
                hovertext=_hover(ok),
                hoverinfo="text",
            )
        )
        xs, ys = _front(ok, cost)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=label,
                legendgroup=label,
                legendrank=rank,
                line={
                    "color": color,
                    "width": 2,
                    "dash": dashes[dash_index % len(dashes)],
                    "shape": "hv",
                },
                marker={"size": 9, "symbol": "diamond"},
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        title=title or f"validation accuracy vs {UNITS.get(cost, cost)}, all runs",
        xaxis_title=axis_title(cost),
        yaxis_title="validation accuracy (inherited weights)",
        template="plotly_white",
        legend_title="runs (seeds pooled)",
    )
    return fig


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (kaleido's start with a newline), or its
    type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:120] if lines else type(exc).__name__


def save_figure(fig: go.Figure, html_path: str | Path, png: bool = True) -> list[Path]:
    """Write self-contained HTML, plus a PNG beside it when kaleido can render one."""
    global _PNG_NOTICE_SHOWN
    html_path = Path(html_path)
    atomic_write(html_path, lambda tmp: fig.write_html(tmp, include_plotlyjs=True, full_html=True))
    written = [html_path]
    if not png:
        return written
    png_path = html_path.with_suffix(".png")
    try:
        import kaleido  # noqa: F401

        # kaleido's browser driver logs every temp-dir cleanup at INFO into the app's log
        logging.getLogger("choreographer").setLevel(logging.WARNING)
        logging.getLogger("kaleido").setLevel(logging.WARNING)
        atomic_write(png_path, lambda tmp: fig.write_image(tmp, format="png", scale=2))
        written.append(png_path)
    except Exception as exc:  # kaleido missing, or no Chromium for it to drive
        if not _PNG_NOTICE_SHOWN:
            _PNG_NOTICE_SHOWN = True
            reason = (
                "kaleido is not installed"
                if isinstance(exc, ImportError)
                else f"kaleido could not render ({_first_line(exc)})"
            )
            say(
                logging.getLogger(__name__),
                f"note: HTML plots only, no PNG: {reason}; `pip install kaleido` and "
                "`apt-get install chromium` enable PNGs",
                stderr=True,
            )
    return written
