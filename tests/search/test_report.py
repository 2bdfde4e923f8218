from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

from search.plots import report_figure
from search.report import _panels, find_runs, write_report
from search.runner import run_search
from supernet.common.errors import UserError


def test_report_combines_runs(
    trained_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    half_flops: int,
) -> None:
    root = tmp_path / "sweep"
    for job, (flops, seed) in enumerate([(half_flops, 0), (half_flops, 1), ("1M", 0)]):
        overrides = {"budget.flops": flops, "seed": seed}
        cfg = search_config(
            f"supernet={trained_checkpoint}",
            f"budget.flops={flops}",
            f"seed={seed}",
            "search.n_trials=6",
            "search.sampler=random",
        )
        run_search(cfg, root / str(job), overrides=overrides, plotlyjs_dir=root)
    # a job written before the duplicate_of column existed
    old = pd.read_csv(root / "2" / "trials.csv").drop(columns="duplicate_of")
    old.to_csv(root / "2" / "trials.csv", index=False)
    report = write_report([root], png=False)
    # one plotly.js for the whole sweep, at its root: the jobs' plots and the report load it
    assert sorted(p.name for p in root.rglob("*") if p.suffix in (".html", ".js")) == [
        "history.html",
        "history.html",
        "history.html",
        "pareto.html",
        "pareto.html",
        "pareto.html",
        "plotly.min.js",
        "report_pareto.html",
    ]
    assert 'src="../plotly.min.js"' in (root / "0" / "history.html").read_text()
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == [
        "plotly.min.js",
        "report.csv",
        "report.parquet",
        "report_pareto.html",
    ]
    table = pd.read_parquet(root / "report.parquet")
    assert len(table) == 18 and table["run"].tolist() == ["0"] * 6 + ["1"] * 6 + ["2"] * 6
    assert "duplicate_of" in table and table["duplicate_of"].iloc[12:].isna().all()
    assert report.varying == ["budget.flops", "seed"]
    # Seeds pooled: one summary row per budget.
    assert report.summary["budget.flops"].tolist() == [str(half_flops), "1M"]
    assert report.summary["runs"].tolist() == [2, 1]
    first = table[table["budget.flops"].astype(str) == str(half_flops)]
    best = first[first["feasible"]]["val_acc"].max()
    assert report.summary["best_val_acc"].iloc[0] == pytest.approx(best)
    html = (root / "report_pareto.html").read_text()
    assert 'src="plotly.min.js"' in html and len(html) < 300_000
    # One panel per budget, the seeds' trials pooled (as in the summary), with its budget line.
    panels, budgets = _panels(report.trials, report.varying, find_runs([root]), root)
    fig = report_figure(panels, "flops", budgets=budgets)
    titles = [a.text.split("<br>")[0] for a in fig.layout.annotations if "<br>" in a.text]
    assert titles == [f"budget.flops={half_flops}", "budget.flops=1M"]
    assert {(s.xref, s.x0) for s in fig.layout.shapes} == {("x", half_flops / 1e6), ("x2", 1.0)}
    assert {t.xaxis for t in fig.data} == {"x", "x2"}
    assert f"budget.flops={half_flops}" in html and "budget.flops=1M" in html
    assert "seed=0" not in html
    assert "validation accuracy vs flops: 3 runs" in html
    # One run given as itself: its rows are labelled with its directory's name, not "."
    alone = write_report([root / "1"], png=False)
    assert set(alone.trials["run"]) == {"1"}
    html = (root / "1" / "report_pareto.html").read_text()
    assert 'validation accuracy vs flops: 1 run"' in html


def test_find_runs_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no search runs"):
        find_runs([tmp_path])
    with pytest.raises(UserError, match="not found"):
        find_runs([tmp_path / "missing"])


def test_report_of_a_vit_and_a_swin_run_side_by_side(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """The two families at equal cost in one report: their architecture columns differ in type
    (a ViT's embed_dim 64, a Swin's per-stage [24, 48]); the report and its Parquet hold both."""
    import torch

    from supernet import SearchSpace, Supernet
    from supernet.checkpoint import save_checkpoint

    torch.manual_seed(0)
    swin = tmp_path / "swin.pt"
    space = SearchSpace.preset("swin_digits")
    save_checkpoint(swin, Supernet(space), data={"name": "digits"}, train={}, epoch=0)
    for name, checkpoint in (("vit", random_checkpoint), ("swin", swin)):
        cfg = search_config(f"supernet={checkpoint}", "search.n_trials=3", "search.sampler=random")
        run_search(cfg, tmp_path / "sweep" / name)
    report = write_report([tmp_path / "sweep"], png=False)
    assert set(report.trials["family"]) == {"vit", "swin"}
    stored = pd.read_parquet(tmp_path / "sweep" / "report.parquet")
    assert len(stored) == len(report.trials) == 6
    swin_rows = stored[stored["family"] == "swin"]
    assert all(str(v).startswith("[") for v in swin_rows["embed_dim"])
