"""What ``calibrate`` leaves behind: the profile, a table of measurements and a scatter plot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import plotly.graph_objects as go

from supernet.common.atomic import atomic_write

from .calibrate import Calibration

__all__ = ["REPORT_FILES", "scatter_figure", "write_latency_report"]

#: File names written into the output directory.
REPORT_FILES = {
    "profile": "latency_profile.yaml",
    "table": "latency_measurements.csv",
    "html": "latency_scatter.html",
    "png": "latency_scatter.png",
}


def scatter_figure(calibration: Calibration) -> go.Figure:
    """Predicted against measured latency, designed sample and held-out set, with y = x."""
    table, profile = calibration.table, calibration.profile
    m = profile.metrics
    fig = go.Figure()
    for split, symbol in (("train", "circle-open"), ("holdout", "circle")):
        part = table[table["split"] == split]
        fig.add_trace(
            go.Scatter(
                x=part["measured_ms"],
                y=part["predicted_ms"],
                mode="markers",
                marker={"symbol": symbol, "size": 8},
                name="designed sample (fit)" if split == "train" else "held-out",
                text=part["subnet"],
                customdata=part["ape_pct"],
                hovertemplate="%{text}<br>measured %{x:.3f} ms<br>predicted %{y:.3f} ms"
                "<br>error %{customdata:.1f}%<extra></extra>",
            )
        )
    low = float(min(table["measured_ms"].min(), table["predicted_ms"].min())) * 0.95
    high = float(max(table["measured_ms"].max(), table["predicted_ms"].max())) * 1.05
    fig.add_trace(
        go.Scatter(x=[low, high], y=[low, high], mode="lines", name="y = x", line={"dash": "dot"})
    )
    fig.update_layout(
        title=(
            f"Latency predictor: {profile.space.name or 'space'}, batch {profile.batch_size}, "
            f"{profile.threads} threads, {profile.device_name}<br><sup>held-out MAPE "
            f"{m['holdout_mape_pct']:.2f}%, Kendall τ {m['holdout_kendall_tau']:.3f}; "
            f"{profile.n_samples} fit + {profile.n_holdout} held-out subnets</sup>"
        ),
        xaxis_title="measured latency (ms)",
        yaxis_title="predicted latency (ms)",
        template="plotly_white",
    )
    return fig


def _write_png(fig: go.Figure, path: Path) -> str | None:
    """Write a PNG if kaleido (and its Chromium) work; else return a one-line notice."""
    if importlib.util.find_spec("kaleido") is None:
        return "PNG skipped: kaleido is not installed (the HTML plot is self-contained)"
    from ..plots import render_png  # a render of its own, killed if its Chromium hangs

    try:
        atomic_write(path, lambda tmp: render_png(fig, tmp))
    except Exception as exc:  # kaleido without a usable Chromium raises many kinds of error
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"PNG skipped: kaleido could not render ({reason})"
    return None


def write_latency_report(
    calibration: Calibration, out_dir: str | Path
) -> tuple[dict[str, Path], list[str]]:
    """Write the profile, the measurements CSV and the plot (HTML, PNG when possible) atomically.

    Returns the paths written, by kind (see :data:`REPORT_FILES`), and any notices.
    """
    out = Path(out_dir)
    paths = {kind: out / name for kind, name in REPORT_FILES.items()}
    calibration.profile.save(paths["profile"])
    atomic_write(paths["table"], lambda tmp: calibration.table.to_csv(tmp, index=False))
    fig = scatter_figure(calibration)
    from ..plots import write_html  # here: search.plots imports this package (via costs)

    write_html(fig, paths["html"])  # plotly.js once, as plotly.min.js beside it
    notices = []
    notice = _write_png(fig, paths["png"])
    if notice:
        notices.append(notice)
        del paths["png"]
    return paths, notices
