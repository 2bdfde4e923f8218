from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import DictConfig

from search.report import find_runs, write_report
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
        run_search(cfg, root / str(job), overrides=overrides)
    report = write_report([root], png=False)
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == [
        "report.csv",
        "report.parquet",
        "report_pareto.html",
    ]
    table = pd.read_parquet(root / "report.parquet")
    assert len(table) == 18 and table["run"].tolist() == ["0"] * 6 + ["1"] * 6 + ["2"] * 6
    assert report.varying == ["budget.flops", "seed"]
    # Seeds pooled: one summary row per budget.
    assert report.summary["budget.flops"].tolist() == [str(half_flops), "1M"]
    assert report.summary["runs"].tolist() == [2, 1]
    first = table[table["budget.flops"].astype(str) == str(half_flops)]
    best = first[first["feasible"]]["val_acc"].max()
    assert report.summary["best_val_acc"].iloc[0] == pytest.approx(best)
    html = (root / "report_pareto.html").read_text()
    # One colour and one front per budget, the seeds' trials pooled (as in the summary).
    assert f"budget.flops={half_flops}" in html and "budget.flops=1M" in html
    assert "seed=0" not in html


def test_find_runs_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no search runs"):
        find_runs([tmp_path])
    with pytest.raises(UserError, match="not found"):
        find_runs([tmp_path / "missing"])
