"""The commands as a user types them: Hydra app, multirun sweep, report, export."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch

from supernet import load_subnet
from supernet.checkpoint import load_supernet
from supernet.saved_model import read_subnet_yaml

Cli = Callable[..., subprocess.CompletedProcess[str]]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


@pytest.mark.slow
def test_bad_budget_and_missing_checkpoint(
    cli: Cli, random_checkpoint: Path, tmp_path: Path
) -> None:
    line = one_error_line(
        cli(
            "search",
            f"supernet={random_checkpoint}",
            "budget.flops=1k",
            f"hydra.run.dir={tmp_path}",
        )
    )
    assert "budget.flops = 1k FLOPs is below the smallest subnet: this space spans" in line
    assert "(smallest subnet D16-L1-H[1]-M[1])" in line and "(largest subnet D32-L2" in line
    line = one_error_line(cli("search", "supernet=nope/supernet.pt", f"hydra.run.dir={tmp_path}"))
    assert line == (
        "error: checkpoint not found: nope/supernet.pt (train one with `python -m supernet.train`)"
    )
    assert not (tmp_path / "study.db").exists()


@pytest.mark.slow
def test_sweep_report_export(cli: Cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "multirun"
    result = cli(
        "search",
        "--multirun",
        f"supernet={trained_checkpoint}",
        "budget.flops=150k,300k",
        "search.n_trials=6",
        "search.progress=false",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Pareto" in result.stdout or "best feasible" in result.stdout
    report = cli("search.report", str(sweep), "png=false")
    assert report.returncode == 0, report.stderr[-3000:]
    assert (
        "2 runs, 12 trials" in report.stdout
        and "varying between runs: budget.flops" in report.stdout
    )
    # One plotly.js for the sweep, at its root; every HTML (jobs', report's) loads it from there.
    assert [p.relative_to(sweep) for p in sweep.rglob("plotly.min.js")] == [Path("plotly.min.js")]
    htmls = sorted(p.relative_to(sweep).as_posix() for p in sweep.rglob("*.html"))
    assert len(htmls) == 5 and "report_pareto.html" in htmls
    for job in ("0", "1"):
        for name in ("pareto.html", "history.html"):
            html = (sweep / job / name).read_text()
            assert 'src="../plotly.min.js"' in html and len(html) < 200_000
    table = pd.read_csv(sweep / "report.csv")
    assert len(table) == 12 and sorted(table["budget.flops"].unique()) == ["150k", "300k"]
    for flops, group in table.groupby("budget.flops"):
        limit = {"150k": 150e3, "300k": 300e3}[flops]
        assert (group.loc[group["feasible"], "flops"] <= limit).all()

    out = tmp_path / "exported"
    exported = cli("search.export", str(sweep / "1"), "trial=best", f"out={out}", "onnx=false")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert exported.stdout.startswith("picked trial ")
    model = load_subnet(out)
    meta = read_subnet_yaml(out)[2]
    net, _ = load_supernet(meta["source"]["checkpoint"])
    x = torch.randn(3, 1, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(model(x), net(x, model.subnet), atol=1e-5)
    again = one_error_line(cli("search.export", str(sweep / "1"), f"out={out}"))
    assert "exists and is not empty" in again
    assert "unknown option 'trail'" in one_error_line(
        cli("search.export", str(sweep / "1"), "trail=3")
    )
