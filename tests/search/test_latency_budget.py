"""The search under a latency budget, with a profile calibrated on this machine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from search.latency import calibrate
from search.runner import run_search
from supernet import SearchSpace, UserError, load_supernet


@pytest.fixture(scope="module")
def profile_dir(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    space = load_supernet(random_checkpoint)[0].space
    result = calibrate(
        space,
        batch_size=1,
        threads=1,
        n_samples=10,
        n_holdout=4,
        warmup=1,
        repeats=3,
        rounds=1,
        progress=False,
    )
    directory = tmp_path_factory.mktemp("profiles")
    result.profile.save(directory / "profile.yaml")
    return directory


@pytest.mark.slow
def test_search_under_a_latency_budget_measures_what_it_evaluates(
    random_checkpoint: Path,
    profile_dir: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
) -> None:
    space: SearchSpace = load_supernet(random_checkpoint)[0].space
    from search.latency import LatencyProfile

    profile = LatencyProfile.load(profile_dir / "profile.yaml")
    low = profile.predict_ms(space, space.smallest())
    high = profile.predict_ms(space, space.largest())
    budget = (low + high) / 2
    cfg = search_config(
        f"supernet={random_checkpoint}",
        f"search.latency_profile={profile_dir}",
        "search.latency_threads=1",
        f"budget.latency_ms={budget}",
        "search.measure_latency=true",
        "search.sampler=random",
        "search.n_trials=8",
        "search.threads=1",
    )
    trials = run_search(cfg, tmp_path).trials
    assert len(trials) == 8 and trials["latency_ms"].notna().all()
    feasible = trials[trials["feasible"]]
    infeasible = trials[~trials["feasible"]]
    assert len(feasible) >= 1 and len(infeasible) >= 1  # the smallest and largest are seeded
    assert (feasible["latency_ms"] <= budget).all()
    assert (infeasible["latency_ms"] > budget).all()
    assert infeasible["val_acc"].isna().all() and infeasible["measured_latency_ms"].isna().all()
    assert (feasible["measured_latency_ms"] > 0).all()


def test_latency_budget_without_a_profile_says_how_to_calibrate(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = search_config(
        f"supernet={random_checkpoint}",
        f"search.latency_profile={tmp_path / 'no_profiles'}",
        "budget.latency_ms=1.0",
    )
    with pytest.raises(UserError) as info:
        run_search(cfg, tmp_path / "run")
    assert "budget.latency_ms needs predicted latency" in str(info.value)
    assert "python -m search.latency calibrate" in str(info.value)
    assert not (tmp_path / "run" / "trials.csv").exists()
