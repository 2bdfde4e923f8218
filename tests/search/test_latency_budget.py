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


def test_a_gpu_target_is_searched_on_a_machine_without_one(
    random_checkpoint: Path,
    profile_dir: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A profile calibrated on the GPU box predicts for that GPU here; only measuring needs it."""
    import dataclasses

    import torch
    import yaml

    from search.export import export_subnet
    from search.latency import LatencyProfile

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    space: SearchSpace = load_supernet(random_checkpoint)[0].space
    cpu = LatencyProfile.load(profile_dir / "profile.yaml")
    gpu = dataclasses.replace(cpu, device="cuda:0", device_name="cuda: NVIDIA H200")
    gpu.save(tmp_path / "h200.yaml")
    budget = (gpu.predict_ms(space, space.smallest()) + gpu.predict_ms(space, space.largest())) / 2
    options = [
        f"supernet={random_checkpoint}",
        f"search.latency_profile={tmp_path / 'h200.yaml'}",
        "search.latency_device=cuda",
        f"budget.latency_ms={budget}",
        "search.sampler=random",
        "search.n_trials=4",
        "search.threads=1",
    ]
    trials = run_search(search_config(*options), tmp_path / "run").trials
    assert len(trials) == 4 and trials["latency_ms"].notna().all()
    assert (trials[trials["feasible"]]["latency_ms"] <= budget).all()
    # the run says what its latencies are for: on the terminal, in study.yaml, in an export
    assert (
        "latency_ms predicted for cuda: NVIDIA H200, batch 1 (profile " in capsys.readouterr().err
    )
    manifest = yaml.safe_load((tmp_path / "run" / "study.yaml").read_text())
    assert manifest["latency"] == {
        "device": "cuda:0",
        "device_name": "cuda: NVIDIA H200",
        "batch_size": 1,
        "threads": None,
        "profile": str((tmp_path / "h200.yaml").resolve()),
        "calibrated": gpu.created,
    }
    export_subnet(tmp_path / "run", "best", tmp_path / "best", onnx=False)
    assert "ms on cuda: NVIDIA H200, batch 1 |" in (tmp_path / "best" / "README.md").read_text()
    # a rerun in the same directory for another device is another search: refused
    cpu_options = [o for o in options if "latency_device" not in o and "h200" not in o]
    with pytest.raises(UserError, match=r"made for another search \(latency_target: study has"):
        run_search(
            search_config(
                *cpu_options,
                f"search.latency_profile={profile_dir}",
                "search.latency_threads=1",
            ),
            tmp_path / "run",
        )
    with pytest.raises(UserError) as info:
        run_search(search_config(*options, "search.measure_latency=true"), tmp_path / "run2")
    assert "search.measure_latency" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run2" / "trials.csv").exists()
    with pytest.raises(UserError, match=r"search\.latency_device must be the device"):
        run_search(
            search_config(*options[:2], "search.latency_device=gpu", "budget.latency_ms=1"),
            tmp_path / "run3",
        )
