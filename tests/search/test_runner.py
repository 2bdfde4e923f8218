from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from omegaconf import DictConfig
from optuna.trial import TrialState

from search.budget import BudgetError
from search.runner import SearchResult, job_overrides, run_search
from search.settings import SearchSettings, SettingsError
from search.storage import StudyMismatchError, default_storage_url
from supernet.common.errors import CheckpointError, UserError


def load(run_dir: Path) -> optuna.Study:
    manifest = yaml.safe_load((run_dir / "study.yaml").read_text())
    return optuna.load_study(study_name=manifest["study_name"], storage=manifest["storage"])


def test_manifest_and_seeded_trials(searched: SearchResult) -> None:
    manifest = yaml.safe_load((searched.run_dir / "study.yaml").read_text())
    assert manifest["storage"] == default_storage_url(searched.run_dir)
    assert manifest["objectives"] == ["val_acc"] and manifest["cost_axis"] == "flops"
    assert manifest["sampler"] == "random" and len(manifest["checkpoint_sha256"]) == 64
    study = load(searched.run_dir)
    space = searched.trials  # the smallest and largest subnets are enqueued first
    assert study.trials[0].user_attrs["seeded"] and study.trials[1].user_attrs["seeded"]
    assert space["arch"].iloc[0] == "D16-L1-H[1]-M[1]" and space["arch"].iloc[1].startswith(
        "D32-L2"
    )


def test_one_trial_seeds_one_subnet(
    trained_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    """search.n_trials=1 ran the smallest subnet and left the largest WAITING in the study."""
    result = run_search(
        search_config(f"supernet={trained_checkpoint}", "search.n_trials=1"), tmp_path
    )
    trials = load(result.run_dir).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE]
    assert trials[0].user_attrs["seeded"]


def test_resume_adds_trials_to_the_same_study(
    trained_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    overrides = [f"supernet={trained_checkpoint}", "search.n_trials=5", "search.sampler=random"]
    first = run_search(search_config(*overrides), tmp_path)
    second = run_search(
        search_config(*overrides[:-2], "search.n_trials=3", overrides[-1]), tmp_path
    )
    assert first.study_name == second.study_name
    assert len(second.trials) == 8 and second.trials["number"].tolist() == list(range(8))
    storage = optuna.storages.RDBStorage(default_storage_url(tmp_path))
    assert [s.study_name for s in storage.get_all_studies()] == [first.study_name]
    # The same study name with another budget would mix two searches: refused.
    with pytest.raises(StudyMismatchError, match=r"budget: study has .*this run .*study_name"):
        run_search(
            search_config(*overrides, "budget.flops=400k", f"search.study_name={first.study_name}"),
            tmp_path,
        )


@pytest.mark.slow
def test_two_workers_share_one_study(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = search_config(
        f"supernet={random_checkpoint}",
        "search.n_workers=2",
        "search.n_trials=7",
        "search.sampler=random",
        "search.threads=1",
    )
    result = run_search(cfg, tmp_path)
    numbers = result.trials["number"].tolist()
    assert sorted(numbers) == list(range(7))  # unique, and exactly the requested count
    assert set(result.trials["state"]) == {"COMPLETE"}
    study = load(tmp_path)
    workers = {t.user_attrs["worker"] for t in study.trials}
    assert len(workers) == 2  # two processes ran them


def test_multi_objective_front_is_optunas(
    trained_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    cfg = search_config(
        f"supernet={trained_checkpoint}",
        "search.objectives=[val_acc,params]",
        "search.n_trials=14",
        "budget.min_params=1k",
    )
    result = run_search(cfg, tmp_path)
    study = load(tmp_path)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    optuna_front = {t.number for t in study.best_trials}
    ours = set(result.trials.loc[result.trials["pareto"], "number"])
    assert ours == optuna_front
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        assert t.values[1] == t.user_attrs["params"]


def test_zero_trials_only_creates_the_study(
    random_checkpoint: Path, search_config: Callable[..., DictConfig], tmp_path: Path
) -> None:
    result = run_search(
        search_config(f"supernet={random_checkpoint}", "search.n_trials=0"), tmp_path
    )
    assert result.trials["state"].tolist() == ["WAITING", "WAITING"]  # the seeded subnets
    assert (tmp_path / "trials.csv").is_file() and (tmp_path / "pareto.html").is_file()


def test_user_errors(
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
) -> None:
    ckpt = f"supernet={random_checkpoint}"
    with pytest.raises(SettingsError, match=r"no supernet checkpoint given; pass supernet="):
        run_search(search_config(), tmp_path)
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.pt"):
        run_search(search_config(f"supernet={tmp_path / 'nope.pt'}"), tmp_path)
    with pytest.raises(BudgetError, match="below the smallest subnet: this space spans"):
        run_search(search_config(ckpt, "budget.flops=10"), tmp_path)
    latency = (
        r"budget\.latency_ms needs predicted latency; no latency profile .* "
        r"calibrate one with `python -m search\.latency calibrate"
    )
    with pytest.raises(UserError, match=latency):
        run_search(search_config(ckpt, "budget.latency_ms=5"), tmp_path)
    with pytest.raises(SettingsError, match=r"search\.objectives must be \[val_acc\]"):
        run_search(search_config(ckpt, "search.objectives=[flops]"), tmp_path)
    with pytest.raises(UserError, match="unknown sampler 'cma'"):
        run_search(search_config(ckpt, "search.sampler=cma"), tmp_path)
    with pytest.raises(UserError, match=r"val_size=100000 is larger than the validation split"):
        run_search(search_config(ckpt, "search.val_size=100000"), tmp_path)
    with pytest.raises(UserError, match="cannot open the Optuna storage 'nosuchdb://x'"):
        run_search(search_config(ckpt, "search.storage=nosuchdb://x"), tmp_path)
    # Nothing was created by the failed runs: no study, no tables.
    assert not (tmp_path / "study.db").exists() and not (tmp_path / "trials.csv").exists()


def test_settings_cost_axis() -> None:
    base = {"supernet": "x.pt", "search": {}}
    assert SearchSettings.from_config(base).cost_axis == "flops"
    assert SearchSettings.from_config({**base, "budget": {"params": "1M"}}).cost_axis == "params"
    multi = {"supernet": "x.pt", "search": {"objectives": ["val_acc", "macs"]}}
    assert SearchSettings.from_config(multi).cost_axis == "macs"
    assert SearchSettings.from_config(multi).sampler_name == "nsga2"


@pytest.mark.parametrize(
    ("sampler", "objectives"),
    [
        ("tpe", "[val_acc]"),
        ("tpe", "[val_acc,flops]"),
        ("gp", "[val_acc]"),
        ("gp", "[val_acc,params]"),
        ("nsga2", "[val_acc,macs]"),
        ("autoformer_evolution", "[val_acc]"),
    ],
)
def test_every_sampler_runs_under_a_budget(
    sampler: str,
    objectives: str,
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    half_flops: int,
) -> None:
    cfg = search_config(
        f"supernet={random_checkpoint}",
        f"search.sampler={sampler}",
        f"search.objectives={objectives}",
        f"budget.flops={half_flops}",
        "search.n_trials=14",
        "search.tpe.n_startup_trials=4",
        "search.gp.n_startup_trials=4",
        "search.nsga2.population_size=4",
        "search.autoformer_evolution.population_size=4",
        "search.autoformer_evolution.parents=2",
    )
    result = run_search(cfg, tmp_path)
    frame = result.trials
    assert len(frame) == 14 and set(frame["state"]) == {"COMPLETE"}
    assert (frame.loc[frame["feasible"], "flops"] <= half_flops).all()
    assert frame.loc[~frame["feasible"], "val_acc"].isna().all()


def test_plain_dict_config(random_checkpoint: Path, tmp_path: Path) -> None:
    """run_search without Hydra: a dict with the config's keys, defaults for the rest."""
    cfg = {
        "supernet": str(random_checkpoint),
        "budget": {"params": "5k"},
        "search": {"n_trials": 4, "progress": False, "plots_png": False},
    }
    result = run_search(cfg, tmp_path)
    assert (
        len(result.trials) == 4
        and (result.trials.loc[result.trials["feasible"], "params"] <= 5000).all()
    )


@pytest.mark.slow
def test_postgres_two_workers_and_a_second_machine(
    postgres_url: str,
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
) -> None:
    """Many machines: each runs the same command against one PostgreSQL study."""
    common = [
        f"supernet={random_checkpoint}",
        f"search.storage={postgres_url}",
        "search.sampler=random",
        "search.threads=1",
    ]
    first = run_search(
        search_config(*common, "search.n_workers=2", "search.n_trials=6"), tmp_path / "a"
    )
    second = run_search(search_config(*common, "search.n_trials=3"), tmp_path / "b")
    assert first.study_name == second.study_name
    assert second.trials["number"].tolist() == list(range(9))
    assert set(second.trials["state"]) == {"COMPLETE"}
    assert not (tmp_path / "a" / "study.db").exists()  # nothing went to SQLite


def test_overrides_keep_types_and_hide_passwords(search_config: Callable[..., DictConfig]) -> None:
    overrides = [
        "supernet=x.pt",
        "budget.flops=2M",
        "budget.params=5e5",
        "seed=3",
        "search=autoformer_evolution",
        "search.storage=postgresql://me:secret@db/search",
        "hydra.run.dir=somewhere",
    ]
    cfg = search_config(*overrides)
    got = job_overrides(overrides, cfg)
    assert got == {
        "supernet": "x.pt",
        "budget.flops": "2M",
        "budget.params": 5e5,
        "seed": 3,
        "search": "autoformer_evolution",
        "search.storage": "postgresql://me:***@db/search",
    }


def test_the_opening_line_counts_done_queued_and_running_trials_apart() -> None:
    from search.runner import _study_counts

    study = optuna.create_study()
    study.enqueue_trial({"x": 0})
    study.enqueue_trial({"x": 1})
    assert _study_counts(study) == "0 trials done, 2 queued"
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    study.ask()  # takes the other queued trial
    assert _study_counts(study) == "1 trial done, 1 running"


@pytest.mark.slow
def test_ctrl_c_in_the_middle_of_a_call_is_acted_on_after_it(
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The search's process watches its workers with subprocess's poll(); a Ctrl-C raised inside
    it (between its lock's acquire and its try) left the lock held and the search hung in the
    wait() for that worker. Ctrl-C is acted on between two calls: every poll() runs to its end,
    then the search stops with KeyboardInterrupt and leaves no trial running."""
    import os
    import signal
    import subprocess
    import time

    real_poll = subprocess.Popen.poll
    calls = {"entered": 0, "finished": 0}

    def poll(self: subprocess.Popen[str]) -> int | None:
        calls["entered"] += 1
        if calls["entered"] == 6:
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 0.2
            while time.monotonic() < deadline:  # the handler runs here, inside the call
                pass
        code = real_poll(self)
        calls["finished"] += 1
        return code

    monkeypatch.setattr(subprocess.Popen, "poll", poll)
    cfg = search_config(
        f"supernet={random_checkpoint}",
        "search.n_workers=2",
        "search.n_trials=200",
        "search.sampler=random",
        "search.threads=1",
    )
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, tmp_path)
    assert calls["entered"] >= 6 and calls["entered"] == calls["finished"]
    study = load(tmp_path)
    assert not [t.number for t in study.trials if t.state == TrialState.RUNNING]
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) < 200
