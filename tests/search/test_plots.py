from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from search import plots
from search.budget import Budget


def test_no_png_renderer_gives_html_and_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a Chromium for kaleido, the HTML is still written, no PNG (nor a temporary file)
    is left, and one notice names the reason (kaleido's messages start with a blank line)."""
    pytest.importorskip("kaleido")  # the dev extra installs it; without it the reason differs
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))  # read by the renderer
    monkeypatch.setattr(plots, "_PNG_FAILED", False)
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    written = plots.save_figure(fig, tmp_path / "a.html")
    assert written == [tmp_path / "a.html"]
    assert (tmp_path / "a.html").read_text().count("<html") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "plotly.min.js"]
    err = capsys.readouterr().err
    assert "no PNG: kaleido could not render (Kaleido requires Google Chrome" in err
    assert err.count("\n") == 1
    # the next figures of this process do not try (each try would start a Python and wait)
    monkeypatch.setattr(plots, "render_png", lambda *a: pytest.fail("tried again"))
    assert plots.save_figure(fig, tmp_path / "b.html") == [tmp_path / "b.html"]
    assert capsys.readouterr().err == ""
    assert plots.save_figure(fig, tmp_path / "c.html", png=False) == [tmp_path / "c.html"]


def test_a_hung_png_renderer_is_killed_and_the_html_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """kaleido's Chromium once hung for 20 minutes on one figure of a search: the render runs in
    a session of its own, killed with everything it started after PNG_TIMEOUT_S."""
    pytest.importorskip("kaleido")
    pid_file = tmp_path / "renderer.pid"
    # a renderer that starts a child of its own (as kaleido starts Chromium) and hangs
    hang = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
        f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "time.sleep(300)\n"
    )
    monkeypatch.setattr(plots, "_RENDER", hang)
    monkeypatch.setattr(plots, "PNG_TIMEOUT_S", 5.0)
    monkeypatch.setattr(plots, "_PNG_FAILED", False)
    written = plots.save_figure(go.Figure(go.Bar(y=[1, 2])), tmp_path / "a.html")
    assert written == [tmp_path / "a.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "plotly.min.js", pid_file.name]
    assert (
        "no PNG: kaleido could not render (it did not finish within 5 s)" in capsys.readouterr().err
    )
    for pid in map(int, pid_file.read_text().split()):  # the renderer and its child: gone
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), pid


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and waiting for its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _frame(over: bool = True) -> pd.DataFrame:
    """Twelve COMPLETE trials at 1..12 MFLOPs; every third over budget (no accuracy)."""
    rows = []
    for i in range(12):
        feasible = not over or i % 3 != 0
        rows.append(
            {
                "number": i,
                "state": "COMPLETE",
                "arch": f"D16-L2-#{i}",
                "embed_dim": 16,
                "depth": 2,
                "num_heads": json.dumps([1, 2]),
                "mlp_ratio": json.dumps([2, 4]),
                "params": 1000 * (i + 1),
                "macs": 500_000 * (i + 1),
                "flops": 1_000_000 * (i + 1),
                "latency_ms": np.nan,
                # accuracy first falls, then rises: a slope would differ from the steps
                "val_acc": (0.6 + 0.02 * abs(i - 5)) if feasible else np.nan,
                "feasible": feasible,
            }
        )
    frame = pd.DataFrame(rows)
    frame["feasible"] = frame["feasible"].astype("boolean")
    return frame


def _traces(fig: go.Figure) -> dict[str, go.Scatter]:
    return {t.name.split(" (")[0]: t for t in fig.data}


def test_history_best_so_far_is_a_step_line() -> None:
    frame = _frame()
    fig = plots.history_figure(frame)
    best = _traces(fig)["best so far"]
    assert best.line.shape == "hv"  # flat until a better trial, then up: no slopes
    ok = frame[frame["val_acc"].notna()]
    assert list(best.x) == ok["number"].tolist()
    assert list(best.y) == pytest.approx(ok["val_acc"].cummax().tolist())


@pytest.mark.parametrize("figure", ["pareto", "history"])
def test_over_budget_trials_sit_in_their_own_strip(figure: str) -> None:
    """Over-budget trials have no accuracy: they are drawn in a subplot of their own below the
    accuracy axis, labelled "over budget", never on the accuracy axis."""
    frame = _frame()
    if figure == "pareto":
        fig = plots.pareto_figure(frame, "flops", Budget.from_config({"flops": 8e6}))
    else:
        fig = plots.history_figure(frame)
    traces = _traces(fig)
    over = traces["over budget, not evaluated"]
    assert len(over.x) == 4 and (over.xaxis, over.yaxis) == ("x2", "y2")
    assert fig.layout.yaxis2.ticktext == (plots.OVER_BUDGET,) and set(over.y) == {0}
    assert fig.layout.yaxis2.domain[1] < fig.layout.yaxis.domain[0]  # below the accuracy axis
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"  # shared x
    for name, trace in traces.items():
        if name != "over budget, not evaluated":
            assert trace.yaxis == "y" and min(trace.y) >= 0.6
    if figure == "pareto":  # the budget line crosses both, labelled once
        assert {(s.xref, s.x0) for s in fig.layout.shapes} == {("x", 8.0), ("x2", 8.0)}
        assert [a.text for a in fig.layout.annotations] == ["budget"]


def test_no_strip_without_over_budget_trials() -> None:
    for fig in (plots.pareto_figure(_frame(over=False)), plots.history_figure(_frame(over=False))):
        assert {t.yaxis for t in fig.data} == {"y"} and "yaxis2" not in fig.layout.to_plotly_json()


def test_report_figure_has_one_panel_per_budget_with_its_line() -> None:
    frame = _frame()
    worse = frame.assign(val_acc=frame["val_acc"] - 0.1)
    panels = {
        "budget.flops=4M": {"search.sampler=nsga2": frame, "search.sampler=random": worse},
        "budget.flops=8M": {"search.sampler=nsga2": worse, "search.sampler=random": frame},
    }
    budgets = {
        "budget.flops=4M": [Budget.from_config({"flops": 4e6})] * 2,  # two seeds, one line
        "budget.flops=8M": [Budget.from_config({"flops": 8e6})],
    }
    fig = plots.report_figure(panels, "flops", budgets=budgets)
    assert {(s.xref, s.x0) for s in fig.layout.shapes} == {("x", 4.0), ("x2", 8.0)}
    assert len(fig.layout.shapes) == 2
    fronts = [t for t in fig.data if t.mode == "lines+markers"]
    assert [(t.name, t.xaxis) for t in fronts] == [
        ("search.sampler=random", "x"),
        ("search.sampler=nsga2", "x"),
        ("search.sampler=random", "x2"),
        ("search.sampler=nsga2", "x2"),
    ]
    assert all(t.line.shape == "hv" for t in fronts)
    colours = {(t.name, t.line.color) for t in fronts}
    assert len(colours) == 2  # a sampler keeps its colour across panels
    assert sum(bool(t.showlegend) for t in fronts) == 2  # and is listed once
    titles = [a.text for a in fig.layout.annotations if a.text.startswith("budget.")]
    assert titles == [
        "budget.flops=4M<br>16 feasible, 8 over budget (not drawn)",
        "budget.flops=8M<br>16 feasible, 8 over budget (not drawn)",
    ]
    assert fig.layout.yaxis2.matches == "y"  # one accuracy scale for all panels


def test_html_loads_one_shared_plotlyjs(tmp_path: Path) -> None:
    """No HTML inlines plotly.js: it is written once, as plotly.min.js, and every HTML loads
    it by a path relative to itself (so it opens offline from file://)."""
    fig = plots.history_figure(_frame())
    plots.save_figure(fig, tmp_path / "a.html", png=False)
    plots.save_figure(fig, tmp_path / "b.html", png=False)
    plots.save_figure(fig, tmp_path / "job" / "c.html", png=False, plotlyjs_dir=tmp_path)
    source = get_plotlyjs()
    assert len(source) > 3_000_000
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "a.html",
        "b.html",
        "c.html",
        "job",
        "plotly.min.js",
    ]
    assert (tmp_path / "plotly.min.js").read_text() == source
    for html_path in (tmp_path / "a.html", tmp_path / "b.html", tmp_path / "job" / "c.html"):
        html = html_path.read_text()
        assert len(html) < 100_000 and source[:2000] not in html
        (src,) = re.findall(r'<script charset="utf-8" src="([^"]+)"', html)
        assert not src.startswith(("http", "/"))
        assert (html_path.parent / src).resolve() == (tmp_path / "plotly.min.js").resolve()
        assert "This plot needs plotly.js" in html  # what a file moved without it shows
    mtime = (tmp_path / "plotly.min.js").stat().st_mtime_ns
    plots.save_figure(fig, tmp_path / "d.html", png=False)
    assert (tmp_path / "plotly.min.js").stat().st_mtime_ns == mtime  # not rewritten


def test_the_renderer_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """SIGKILL of the plotting process (the OOM killer) took the renderer with it only after
    the render: it went on and wrote a PNG beside a run that had died."""
    import signal
    import subprocess
    import sys

    pid_file = tmp_path / "renderer.pid"
    hang = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    parent = (
        "import plotly.graph_objects as go\n"
        "from search import plots\n"
        f"plots._RENDER = {hang!r}\n"
        f"plots.render_png(go.Figure(go.Bar(y=[1])), {str(tmp_path / 'a.png')!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", parent], cwd=Path(plots.__file__).parents[1])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the renderer did not start"
            time.sleep(0.05)
        renderer = int(pid_file.read_text())
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 10
        while _alive(renderer) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(renderer)
    finally:
        process.kill()
        process.wait()
    assert not (tmp_path / "a.png").exists()
