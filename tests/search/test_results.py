from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest

from search.budget import Budget
from search.costs import CostModel
from search.objective import Objective, load_val_data, subnet_params
from search.plots import pareto_figure
from search.results import (
    CONTRACT_COLUMNS,
    pareto_mask,
    read_trials,
    summary_text,
    trials_frame,
    write_table,
)
from search.runner import SearchResult
from supernet.checkpoint import load_supernet


def brute_force_front(acc: list[float], cost: list[float]) -> list[bool]:
    out = []
    for i in range(len(acc)):
        dominated = any(
            acc[j] >= acc[i] and cost[j] <= cost[i] and (acc[j] > acc[i] or cost[j] < cost[i])
            for j in range(len(acc))
        )
        out.append(not dominated)
    return out


def test_pareto_mask_small_cases() -> None:
    assert pareto_mask([0.5, 0.7, 0.6], [1, 2, 3]).tolist() == [True, True, False]
    # Equal points are both on the front; an equal-accuracy costlier one is not.
    assert pareto_mask([0.7, 0.7, 0.7], [2, 2, 3]).tolist() == [True, True, False]
    assert pareto_mask([0.9, float("nan"), 0.1], [5, 1, float("nan")]).tolist() == [
        True,
        False,
        False,
    ]
    assert pareto_mask([], []).tolist() == []


def test_pareto_mask_matches_brute_force() -> None:
    rng = random.Random(0)
    for n in (1, 2, 5, 30, 80):
        acc = [rng.choice([0.1, 0.2, 0.3, 0.4, 0.5]) for _ in range(n)]
        cost = [rng.choice([1, 2, 3, 4]) for _ in range(n)]
        assert pareto_mask(acc, cost).tolist() == brute_force_front(acc, cost)


def test_table_round_trip_is_atomic(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "number": [0, 1],
            "state": ["COMPLETE", "FAIL"],
            "embed_dim": pd.array([16, None], dtype="Int64"),
            "num_heads": [json.dumps([1, 2]), None],
            "feasible": pd.array([True, None], dtype="boolean"),
            "val_acc": [0.5, np.nan],
        }
    )
    written = write_table(frame, tmp_path / "trials")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv", "trials.parquet"]
    assert [p.name for p in written] == ["trials.csv", "trials.parquet"]
    for path in written:
        back = read_trials(path)
        assert back["embed_dim"].dtype == "Int64" and back["feasible"].dtype == "boolean"
        assert back["val_acc"].isna().tolist() == [False, True]


def test_search_table_contract(searched: SearchResult, half_flops: int) -> None:
    frame = read_trials(searched.run_dir / "trials.csv")
    assert list(frame.columns[: len(CONTRACT_COLUMNS)]) == CONTRACT_COLUMNS
    for extra in ("duration_s", "eval_s", "arch", "violation", "duplicate_of", "budget.flops"):
        assert extra in frame.columns
    assert len(frame) == 16 and frame["number"].tolist() == list(range(16))
    assert set(frame["state"]) == {"COMPLETE"}
    assert (frame["budget.flops"] == half_flops).all()
    feasible, infeasible = frame[frame["feasible"]], frame[~frame["feasible"]]
    assert len(feasible) and len(infeasible)
    assert (feasible["flops"] <= half_flops).all() and feasible["val_acc"].notna().all()
    assert (infeasible["flops"] > half_flops).all() and infeasible["val_acc"].isna().all()
    assert (infeasible["eval_s"] == 0).all() and (infeasible["violation"] > 0).all()
    assert (frame["duration_s"] >= frame["eval_s"]).all()
    for row in frame.itertuples():  # lists are JSON, one entry per active layer
        assert len(json.loads(row.num_heads)) == row.depth == len(json.loads(row.mlp_ratio))
    # Pareto: feasible points that no other feasible point beats on accuracy and FLOPs.
    front = frame[frame["pareto"]]
    assert front["feasible"].all()
    for a, b in itertools.product(feasible.itertuples(), front.itertuples()):
        assert not (a.val_acc > b.val_acc and a.flops <= b.flops)
    parquet = read_trials(searched.run_dir / "trials.parquet")
    pd.testing.assert_frame_equal(
        parquet[CONTRACT_COLUMNS], frame[CONTRACT_COLUMNS], check_dtype=False
    )


def test_repeated_subnet_names_the_trial_it_reuses(
    trained_checkpoint: Path, tmp_path: Path
) -> None:
    """A subnet proposed again is not evaluated again: its row's ``duplicate_of`` is the trial
    whose accuracy it reuses, in the frame, in trials.csv/.parquet and read back as Int64."""
    net, payload = load_supernet(trained_checkpoint)
    space = net.space
    data = load_val_data(payload["data"], space, val_size=32)
    objective = Objective(net, data, Budget(), CostModel(space), batch_size=32)
    study = optuna.create_study(direction="maximize")
    for subnet in (space.smallest(), space.largest(), space.smallest()):
        study.enqueue_trial(subnet_params(subnet))
    study.optimize(objective, n_trials=3)
    frame = trials_frame(study, space, Budget())
    assert frame["duplicate_of"].tolist() == [pd.NA, pd.NA, 0]
    assert frame.loc[2, "val_acc"] == frame.loc[0, "val_acc"] and frame.loc[2, "eval_s"] == 0
    for path in write_table(frame, tmp_path / "trials"):
        back = read_trials(path)
        assert back["duplicate_of"].dtype == "Int64"
        assert back["duplicate_of"].tolist() == [pd.NA, pd.NA, 0]
    # the summary counts the trials and says how many subnets they are (as the export does)
    text = summary_text(frame, cost_axis="flops", multi_objective=False, budget=Budget())
    assert text.startswith("3 trials in the study: 3 feasible (2 distinct subnets),")
    # and the Pareto plot: the repeated subnet is one point of the front
    fig = pareto_figure(frame)
    assert fig.data[0].name == "feasible (3 trials, 2 subnets)"
    front = fig.data[1].x  # the smallest subnet, the cheapest, is on it: once
    assert fig.data[1].name == f"Pareto front ({len(front)})" and len(set(front)) == len(front)


def test_older_table_without_duplicate_of_is_read(searched: SearchResult, tmp_path: Path) -> None:
    """A trials.csv written before the column existed reads with it empty."""
    old = pd.read_csv(searched.run_dir / "trials.csv").drop(columns="duplicate_of")
    old.to_csv(tmp_path / "trials.csv", index=False)
    frame = read_trials(tmp_path / "trials.csv")
    assert frame["duplicate_of"].dtype == "Int64" and frame["duplicate_of"].isna().all()


def test_plots_share_one_plotlyjs(searched: SearchResult) -> None:
    """The run's plots open offline without inlining plotly.js each: one plotly.min.js in the
    run dir, loaded by a relative path."""
    assert (searched.run_dir / "plotly.min.js").stat().st_size > 3_000_000
    for name in ("pareto.html", "history.html"):
        html = (searched.run_dir / name).read_text()
        assert '<script charset="utf-8" src="plotly.min.js">' in html and len(html) < 200_000
    html = (searched.run_dir / "pareto.html").read_text()
    assert "over budget, not evaluated" in html and "Pareto front" in html


def test_pareto_figure_content(searched: SearchResult, half_flops: int) -> None:
    frame = read_trials(searched.run_dir / "trials.csv")
    fig = pareto_figure(frame, "flops", Budget.from_config({"flops": half_flops}))
    traces = {t.name.split(" (")[0]: t for t in fig.data}
    assert set(traces) == {"feasible", "Pareto front", "over budget, not evaluated"}
    feasible = frame[frame["feasible"]]
    assert len(traces["feasible"].x) == len(feasible)
    assert len(traces["over budget, not evaluated"].x) == (~frame["feasible"]).sum()
    hover = "\n".join(traces["feasible"].hovertext)
    for arch in feasible["arch"]:
        assert arch in hover  # hover names the architecture
    front = frame[frame["pareto"]].sort_values("flops")
    assert max(traces["Pareto front"].y) == front["val_acc"].max()
    assert fig.layout.shapes[0].x0 == pytest.approx(half_flops / 1e6)  # the budget line
