"""Plotly figures: accuracy vs cost with the Pareto front, and the optimisation history.

Over-budget trials (never evaluated, so they have no accuracy) are drawn in a strip of their own
below the accuracy axis, labelled "over budget", never on it.

Every figure is written as HTML that opens offline: plotly.js is not inlined (4.8 MB a file) but
written once, as ``plotly.min.js``, into the HTML's directory (or a directory above it that the
caller names, a sweep's root) and referenced by a relative path; and as PNG when kaleido and a
Chromium are available, otherwise one notice line says how to get PNGs.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from supernet.common.atomic import atomic_write
from supernet.common.console import say

from .budget import Budget
from .costs import UNITS
from .results import pareto_mask

__all__ = [
    "PLOTLY_JS",
    "history_figure",
    "pareto_figure",
    "render_png",
    "report_figure",
    "save_figure",
    "write_html",
    "write_plotlyjs",
]

_SCALES = {"params": 1e6, "macs": 1e6, "flops": 1e6, "latency_ms": 1.0}
# kaleido and the browser driver it uses log every step at INFO, which Hydra apps print.
for _name in ("kaleido", "choreographer", "logistro"):
    logging.getLogger(_name).setLevel(logging.WARNING)
#: A PNG failed in this process (no kaleido, no Chromium, a hung one): the others are not tried.
_PNG_FAILED = False
#: The file name plotly.js is written under, beside (or above) the HTML that loads it.
PLOTLY_JS = "plotly.min.js"
#: The tick label of the strip that holds over-budget trials.
OVER_BUDGET = "over budget"
_ACC_TITLE = "validation accuracy (inherited weights)"


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


def _count(frame: pd.DataFrame) -> str:
    """How many trials ``frame`` holds, and how many subnets where some are the same one."""
    distinct = frame["arch"].nunique() if "arch" in frame else len(frame)
    return str(len(frame)) if distinct == len(frame) else f"{len(frame)} trials, {distinct} subnets"


def _front(frame: pd.DataFrame, cost: str) -> tuple[list[float], list[float]]:
    """The Pareto points of ``frame`` (its evaluated feasible trials), cheapest first; drawn
    with ``line_shape="hv"`` they make the staircase. A subnet proposed again is one point."""
    if "arch" in frame:
        frame = frame.drop_duplicates("arch")
    front = frame[pareto_mask(frame["val_acc"], frame[cost])].sort_values(cost)
    return (front[cost] / _SCALES[cost]).tolist(), front["val_acc"].tolist()


def _budget_lines(
    fig: go.Figure, budget: Budget | None, cost: str, rows: Sequence[int] = (1,), col: int = 1
) -> None:
    """The budget's bounds on ``cost`` as dashed vertical lines in the subplots at ``rows``,
    ``col`` (labelled in the first)."""
    bound = budget.bound(cost) if budget else None
    if bound is None:
        return
    for value, label in ((bound.high, "budget"), (bound.low, "lower bound")):
        if value is None:
            continue
        for i, row in enumerate(rows):
            label_kw = {"annotation_text": label, "annotation_position": "top"} if i == 0 else {}
            fig.add_vline(
                x=value / _SCALES[cost],
                line_dash="dash",
                line_color="gray",
                row=row,
                col=col,
                exclude_empty_subplots=False,
                **label_kw,
            )


def _canvas(with_strip: bool) -> go.Figure:
    """One accuracy plot, with (when ``with_strip``) a thin strip below it, sharing its x axis,
    for the over-budget trials: they have no accuracy, so they never sit on the accuracy axis."""
    if not with_strip:
        return make_subplots(rows=1, cols=1)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.88, 0.12], vertical_spacing=0.03
    )
    fig.update_yaxes(
        row=2,
        col=1,
        tickvals=[0],
        ticktext=[OVER_BUDGET],
        range=[-1, 1],
        showgrid=False,
        zeroline=False,
        fixedrange=True,
    )
    return fig


def _over_budget_trace(x: pd.Series, frame: pd.DataFrame, name: str) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=[0] * len(frame),
        mode="markers",
        name=name,
        marker={"color": "gray", "symbol": "x", "size": 7, "opacity": 0.6},
        hovertext=_hover(frame),
        hoverinfo="text",
    )


def _axis_titles(fig: go.Figure, x_title: str, with_strip: bool) -> None:
    fig.update_xaxes(title_text=x_title, row=2 if with_strip else 1, col=1)
    fig.update_yaxes(title_text=_ACC_TITLE, row=1, col=1)


def pareto_figure(
    frame: pd.DataFrame, cost: str = "flops", budget: Budget | None = None, title: str = ""
) -> go.Figure:
    """Validation accuracy vs ``cost``: feasible trials, the Pareto front, and over-budget
    subnets (never evaluated) as crosses in a strip below the accuracy axis; hover shows the
    architecture."""
    done = frame[frame["state"] == "COMPLETE"]
    ok = done[done["feasible"].fillna(False) & done["val_acc"].notna()]
    over = done[~done["feasible"].fillna(True)]
    strip = len(over) > 0
    fig = _canvas(strip)
    fig.add_trace(
        go.Scatter(
            x=ok[cost] / _SCALES[cost],
            y=ok["val_acc"],
            mode="markers",
            name=f"feasible ({_count(ok)})",
            marker={"color": qualitative.Plotly[0], "size": 8, "opacity": 0.7},
            hovertext=_hover(ok),
            hoverinfo="text",
        ),
        row=1,
        col=1,
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
        ),
        row=1,
        col=1,
    )
    if strip:
        name = f"over budget, not evaluated ({len(over)})"
        fig.add_trace(_over_budget_trace(over[cost] / _SCALES[cost], over, name), row=2, col=1)
    _budget_lines(fig, budget, cost, rows=(1, 2) if strip else (1,))
    _axis_titles(fig, axis_title(cost), strip)
    fig.update_layout(
        title=title or f"validation accuracy vs {UNITS.get(cost, cost)}",
        template="plotly_white",
        hovermode="closest",
    )
    return fig


def history_figure(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Accuracy of every evaluated trial by trial number, the best so far (a step line), and
    over-budget trials (they cost no evaluation) as crosses in a strip below the accuracy axis."""
    frame = frame.sort_values("number")
    ok = frame[frame["val_acc"].notna()]
    over = frame[(frame["state"] == "COMPLETE") & ~frame["feasible"].fillna(True)]
    strip = len(over) > 0
    fig = _canvas(strip)
    fig.add_trace(
        go.Scatter(
            x=ok["number"],
            y=ok["val_acc"],
            mode="markers",
            name="feasible trial",
            hovertext=_hover(ok),
            hoverinfo="text",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=ok["number"],
            y=ok["val_acc"].cummax(),
            mode="lines",
            name="best so far",
            line={"shape": "hv"},  # it changes only at a better trial: a staircase
        ),
        row=1,
        col=1,
    )
    if strip:
        name = f"over budget, not evaluated ({len(over)})"
        fig.add_trace(_over_budget_trace(over["number"], over, name), row=2, col=1)
    _axis_titles(fig, "trial", strip)
    fig.update_layout(title=title or "optimisation history", template="plotly_white")
    return fig


def report_figure(
    panels: Mapping[str, Mapping[str, pd.DataFrame]],
    cost: str = "flops",
    title: str = "",
    budgets: Mapping[str, Sequence[Budget]] | None = None,
) -> go.Figure:
    """One subplot per panel (a budget, seeds pooled): per series in it (e.g. a sampler) its
    feasible trials (faint) and the Pareto front of all of them, and the panel's budget lines
    (``budgets[panel]``). A series keeps its colour across panels; the accuracy axes are shared.
    Each panel's title counts its feasible and its over-budget (not drawn) trials."""
    names = list(panels)
    n_cols = min(len(names), 3) or 1
    n_rows = max(math.ceil(len(names) / n_cols), 1)
    titles = []
    for name in names:
        done = pd.concat(list(panels[name].values()) or [pd.DataFrame()], ignore_index=True)
        if "state" in done:
            done = done[done["state"] == "COMPLETE"]
            n_ok = int((done["feasible"].fillna(False) & done["val_acc"].notna()).sum())
            n_over = int((~done["feasible"].fillna(True)).sum())
            titles.append(f"{name}<br>{n_ok} feasible, {n_over} over budget (not drawn)")
        else:
            titles.append(name)
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=titles or None,
        shared_yaxes="all",
        horizontal_spacing=0.06,
        vertical_spacing=0.18 / n_rows if n_rows > 1 else 0.0,
    )
    palette = qualitative.Plotly + qualitative.D3
    series = list(dict.fromkeys(label for frames in panels.values() for label in frames))
    for index, name in enumerate(names):
        row, col = index // n_cols + 1, index % n_cols + 1
        # drawn last to first so that the series listed first stay on top
        for label, frame in reversed(list(panels[name].items())):
            color = palette[series.index(label) % len(palette)]
            legend = index == next(i for i, n in enumerate(names) if label in panels[n])
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
                ),
                row=row,
                col=col,
            )
            xs, ys = _front(ok, cost)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    legendrank=series.index(label),
                    showlegend=legend,
                    line={"color": color, "width": 2, "shape": "hv"},
                    marker={"size": 9, "symbol": "diamond"},
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        seen: list[dict[str, float | None]] = []
        for budget in (budgets or {}).get(name, ()):
            if budget.to_config() not in seen:
                seen.append(budget.to_config())
                _budget_lines(fig, budget, cost, rows=(row,), col=col)
        fig.update_xaxes(title_text=axis_title(cost), row=row, col=col)
    for row in range(1, n_rows + 1):
        fig.update_yaxes(title_text=_ACC_TITLE, row=row, col=1)
    fig.update_layout(
        title=title or f"validation accuracy vs {UNITS.get(cost, cost)}, all runs",
        template="plotly_white",
        legend_title="runs (seeds pooled)",
        height=max(450, 380 * n_rows),
    )
    return fig


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of ``exc``'s message (kaleido's start with a newline), or its
    type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:120] if lines else type(exc).__name__


def write_plotlyjs(directory: str | Path) -> Path:
    """``<directory>/plotly.min.js``, the plotly.js of the installed plotly, written unless an
    identical copy is there (atomically: parallel sweep jobs may share one)."""
    path = Path(directory) / PLOTLY_JS
    source = get_plotlyjs().encode()
    try:
        if path.stat().st_size == len(source) and path.read_bytes() == source:
            return path
    except OSError:
        pass
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(source))
    return path


def write_html(
    fig: go.Figure, html_path: str | Path, plotlyjs_dir: str | Path | None = None
) -> Path:
    """Write ``fig`` as HTML that loads plotly.js from ``<plotlyjs_dir>/plotly.min.js`` (default:
    the HTML's own directory) by a path relative to the HTML, so it opens offline, from
    ``file://`` as from a web server, as long as the two files move together."""
    html_path = Path(html_path)
    script = write_plotlyjs(plotlyjs_dir if plotlyjs_dir is not None else html_path.parent)
    src = Path(os.path.relpath(script.resolve(), html_path.parent.resolve())).as_posix()
    html = fig.to_html(include_plotlyjs=src, full_html=True)
    tag = f'<script charset="utf-8" src="{src}"></script>'
    # A file moved without its plotly.min.js says so instead of showing a blank page.
    missing = (
        "<script>if (!window.Plotly) document.write('<p>This plot needs plotly.js at "
        f"{src} (relative to this file); copy {PLOTLY_JS} along with it.</p>');</script>"
    )
    html = html.replace(tag, tag + missing, 1)
    atomic_write(html_path, lambda tmp: Path(tmp).write_text(html, encoding="utf-8"))
    return html_path


#: Seconds a PNG may take. A render is a few seconds; kaleido's Chromium has been seen to hang
#: (20 minutes on one figure of a search, on a loaded machine), which would hold up the command
#: that plots: after this long the PNG is skipped with a notice, the HTML is there.
PNG_TIMEOUT_S = 120.0

#: The renderer's first lines (``python -c _PRELUDE+_RENDER <png> <parent pid>``): on Linux, be
#: killed when the parent dies, even by SIGKILL (the OOM killer), rather than go on to write a PNG
#: nobody waits for.
_PRELUDE = """
import os, sys
if sys.platform == "linux":
    try:
        import ctypes, signal
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    if os.getppid() != int(sys.argv[2]):  # the parent died before that
        sys.exit(1)
"""

#: The render itself, the figure's JSON on stdin.
_RENDER = """
import logging, sys
logging.getLogger("choreographer").setLevel(logging.WARNING)
logging.getLogger("kaleido").setLevel(logging.WARNING)
try:
    import plotly.io as pio
    pio.from_json(sys.stdin.read()).write_image(sys.argv[1], format="png", scale=2)
except Exception as exc:
    sys.stderr.write(str(exc).strip() or type(exc).__name__)
    sys.exit(1)
"""


class PngError(RuntimeError):
    """The PNG could not be rendered (the message says why)."""


def render_png(fig: go.Figure, path: str | Path) -> None:
    """Render ``fig`` into the PNG file ``path`` in a process of its own, in a session of its
    own with the Chromium kaleido starts beneath it, so that a hung browser is killed with it
    after :data:`PNG_TIMEOUT_S` (or when this process is interrupted or killed)."""
    process = subprocess.Popen(
        [sys.executable, "-c", _PRELUDE + _RENDER, str(path), str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = process.communicate(fig.to_json(), timeout=PNG_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise PngError(f"it did not finish within {PNG_TIMEOUT_S:g} s") from None
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0:
        raise PngError(err.strip() or f"the renderer exited with status {process.returncode}")


def save_figure(
    fig: go.Figure,
    html_path: str | Path,
    png: bool = True,
    plotlyjs_dir: str | Path | None = None,
) -> list[Path]:
    """Write the HTML (see :func:`write_html`), plus a PNG beside it when kaleido can render
    one (after one failure, with its notice, this process tries no more)."""
    global _PNG_FAILED
    html_path = write_html(fig, html_path, plotlyjs_dir)
    written = [html_path]
    if not png or _PNG_FAILED:
        return written
    png_path = html_path.with_suffix(".png")
    try:
        import kaleido  # noqa: F401

        atomic_write(png_path, lambda tmp: render_png(fig, tmp))
        written.append(png_path)
    except Exception as exc:  # kaleido missing, no Chromium for it to drive, or a hung one
        _PNG_FAILED = True
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
