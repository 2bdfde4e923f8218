from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest

from search import plots


def test_no_png_renderer_gives_html_and_one_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a Chromium for kaleido, the HTML is still written, no PNG (nor a temporary file)
    is left, and one notice names the reason (kaleido's messages start with a blank line)."""
    pytest.importorskip("kaleido")  # the dev extra installs it; without it the reason differs

    def no_chrome(self: go.Figure, *args: object, **kwargs: object) -> None:
        raise RuntimeError("\n\nKaleido requires Google Chrome to be installed.\nMore text.")

    monkeypatch.setattr(go.Figure, "write_image", no_chrome)
    monkeypatch.setattr(plots, "_PNG_NOTICE_SHOWN", False)
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    written = plots.save_figure(fig, tmp_path / "a.html")
    assert written == [tmp_path / "a.html"]
    assert (tmp_path / "a.html").read_text().count("<html") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html"]
    err = capsys.readouterr().err
    assert "no PNG: kaleido could not render (Kaleido requires Google Chrome" in err
    assert err.count("\n") == 1
    plots.save_figure(fig, tmp_path / "b.html")  # the notice is shown once per process
    assert capsys.readouterr().err == ""
    assert plots.save_figure(fig, tmp_path / "c.html", png=False) == [tmp_path / "c.html"]
