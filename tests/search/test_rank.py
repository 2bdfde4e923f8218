"""python -m search.rank: stratified picks, the stand-alone recipe, statistics, runs and the CLI."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from search.rank import (
    COLUMNS,
    DEFAULT_PROXIES,
    RankError,
    RankSettings,
    SubnetJob,
    pick_subnets,
    proxy_column,
    rank_stats,
    recipe,
    run_jobs,
    run_ranking,
    slug,
    verdict,
)
from supernet import SearchSpace, complexity
from supernet.checkpoint import load_supernet
from supernet.data import build_data
from supernet.evaluation import accuracy, materialize
from supernet.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]

Cli = Callable[..., subprocess.CompletedProcess[str]]


# -- which subnets ---------------------------------------------------------------------------------
def test_pick_one_subnet_per_equal_width_flop_bin() -> None:
    space = SearchSpace.preset("fashion_mnist")
    picks = pick_subnets(space, 12, seed=0)
    flops = [complexity.flops(space, s) for s in picks]
    low = complexity.flops(space, space.smallest())
    high = complexity.flops(space, space.largest())
    bins = [min(11, int((f - low) / ((high - low) / 12))) for f in flops]
    assert bins == list(range(12))  # sorted by FLOPs, one per bin: spread over the whole range
    assert len(set(picks)) == 12 and all(space.contains(s) for s in picks)
    assert pick_subnets(space, 12, seed=0) == picks
    assert pick_subnets(space, 12, seed=1) != picks


def test_pick_fills_empty_bins_and_refuses_too_many(digits_space: SearchSpace) -> None:
    # DIGITS_SMALL holds 40 subnets: with 30 bins several are empty and take their neighbours.
    picks = pick_subnets(digits_space, 30, seed=0)
    assert len(set(picks)) == 30
    flops = [complexity.flops(digits_space, s) for s in picks]
    assert flops == sorted(flops)
    with pytest.raises(
        RankError, match="k=41 but 4096 random draws of this space gave only 40 distinct subnets"
    ):
        pick_subnets(digits_space, 41, seed=0)


def test_slug_is_a_file_name(digits_space: SearchSpace) -> None:
    subnet = digits_space.uniform(32, 2, 2, 1.0)
    assert slug(subnet) == "D32_L2_H2-2_M1-1"
    assert "/" not in slug(SearchSpace.preset("autoformer_tiny").largest())


# -- settings and recipe ---------------------------------------------------------------------------
def test_recipe_is_the_supernets_with_overrides() -> None:
    uniform = {**TrainConfig(strategy="uniform", epochs=60, lr=1e-3).to_dict()}
    sandwich = {**TrainConfig(strategy="sandwich", epochs=10, lr=1e-3, distill=True).to_dict()}
    a = recipe(uniform, {"epochs": 2})
    b = recipe(sandwich, {"epochs": 2})
    assert a == b  # the sampling rule does not matter for one subnet: the same stand-alone run
    assert a.epochs == 2 and a.lr == 1e-3
    assert recipe({}, {}) == TrainConfig()  # no recorded recipe: the defaults
    with pytest.raises(RankError, match=r"train.lr must be a positive number"):
        recipe(uniform, {"lr": -1.0})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "no supernet checkpoint given"),
        ({"supernet": "x.pt", "k": 2}, "k must be an integer ≥ 3"),
        ({"supernet": "x.pt", "n_jobs": 0}, "n_jobs must be an integer ≥ 1"),
        # a billion draws hung the command, silent
        ({"supernet": "x.pt", "pool_size": 10**9}, "pool_size must be at most 200,000"),
        ({"supernet": "x.pt", "colour": "red"}, "unknown option"),
        ({"supernet": "x.pt", "train": {"strategy": "uniform"}}, "supernet training option"),
        ({"supernet": "x.pt", "train": {"epoch": 3}}, r"unknown recipe option\(s\) train.epoch"),
        ({"supernet": "x.pt", "finetune": "yes"}, "finetune must be true or false"),
        ({"supernet": "x.pt", "progress": "bar"}, "progress must be auto, true or false"),
    ],
)
def test_settings_errors(config: dict[str, object], message: str) -> None:
    with pytest.raises(RankError, match=message):
        RankSettings.from_config(config)


def test_settings_keep_only_given_recipe_options() -> None:
    settings = RankSettings.from_config(
        {"supernet": "x.pt", "train": {"epochs": 3, "lr": None}, "scratch_dir": "s"}
    )
    assert settings.train == {"epochs": 3} and settings.scratch_dir == Path("s")


# -- statistics ------------------------------------------------------------------------------------
def _table(inherited: list[float], scratch: list[float], offset: float = 0.0) -> pd.DataFrame:
    n = len(inherited)
    return pd.DataFrame(
        {
            "inherited_val_acc": inherited,
            "inherited_test_acc": [a + offset for a in inherited],
            "finetune_test_acc": [math.nan] * n,
            "scratch_test_acc": scratch,
        }
    )


def test_stats_and_verdict() -> None:
    same = rank_stats(_table([0.80, 0.82, 0.85, 0.90], [0.70, 0.75, 0.80, 0.81]))
    assert same["kendall_tau"] == pytest.approx(1.0) and same["spearman_rho"] == pytest.approx(1)
    # inherited test minus scratch test: 10, 7, 5, 9 points
    assert same["mean_gap_pt"] == pytest.approx(7.75)
    assert same["max_abs_gap_pt"] == pytest.approx(10)
    assert math.isnan(same["kendall_tau_finetune"]) and math.isnan(
        same["mean_finetune_minus_scratch_pt"]
    )
    line = verdict(same)  # 4 subnets: even a perfect order has p = 0.08
    assert line.startswith("verdict: Kendall τ = 1.00") and "inconclusive:" in line
    assert "p = 0.08" in line and "rank more subnets" in line
    assert "7.75 pt above stand-alone" in line
    six = rank_stats(
        _table([0.80, 0.82, 0.85, 0.90, 0.91, 0.93], [0.70, 0.75, 0.80, 0.81, 0.82, 0.9])
    )
    assert six["kendall_p"] < 0.05 and "reliable:" in verdict(six)
    assert "inconclusive" not in verdict(six)

    reversed_ = rank_stats(_table([0.80, 0.82, 0.85, 0.90], [0.81, 0.80, 0.75, 0.70]))
    assert reversed_["kendall_tau"] == pytest.approx(-1.0)
    assert "unreliable" in verdict(reversed_)
    one_swap = rank_stats(_table([0.80, 0.82, 0.85, 0.90], [0.70, 0.80, 0.75, 0.81]))
    assert one_swap["kendall_tau"] == pytest.approx(4 / 6)  # 5 concordant pairs, 1 discordant
    assert "inconclusive" in verdict(one_swap)  # p = 0.33 over 4 subnets
    pairs_swapped = rank_stats(  # 10 subnets, neighbours swapped in pairs: τ 0.78, p 0.001
        _table(
            [0.80, 0.81, 0.82, 0.83, 0.84, 0.85, 0.86, 0.87, 0.88, 0.89],
            [0.71, 0.70, 0.73, 0.72, 0.75, 0.74, 0.77, 0.76, 0.79, 0.78],
        )
    )
    assert "partly reliable" in verdict(pairs_swapped)

    flat = rank_stats(_table([0.8, 0.8, 0.8], [0.7, 0.75, 0.8]))
    assert math.isnan(flat["kendall_tau"]) and "undefined" in verdict(flat)


# -- whole runs ------------------------------------------------------------------------------------
def _config(checkpoint: Path, **extra: object) -> dict[str, object]:
    return {
        "supernet": str(checkpoint),
        "k": 3,
        "png": False,
        "train": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0},
        **extra,
    }


@pytest.fixture(scope="module")
def ranked(trained_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    run_dir = tmp_path_factory.mktemp("rank")
    return run_ranking(_config(trained_checkpoint), run_dir)


def test_ranking_run_writes_table_stats_and_plot(ranked, trained_checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    run_dir = ranked.run_dir
    table = pd.read_csv(run_dir / "rank.csv")
    # the fixed columns, then one per stand-alone seed, then each proxy's score and seconds
    proxy_columns = [c for name in DEFAULT_PROXIES for c in (proxy_column(name), f"proxy_{name}_s")]
    extra = ["scratch_test_acc_seed0", *[c for c in proxy_columns if c not in COLUMNS]]
    assert list(table.columns) == [*COLUMNS, *extra] and len(table) == 3
    assert table["flops"].is_monotonic_increasing
    net, payload = load_supernet(trained_checkpoint)
    picks = pick_subnets(net.space, 3, seed=0)
    assert table["arch"].tolist() == [str(s) for s in picks]
    for column in [c for c in table.columns if c.endswith("_acc") or "_acc_seed" in c]:
        assert table[column].between(0, 1).all(), column
    # The inherited accuracies are the supernet's own, on the split the search evaluates on.
    splits = build_data(payload["data"])
    val_x, val_y = materialize(splits.val)
    direct = [accuracy(net, val_x, val_y, s) for s in picks]
    np.testing.assert_allclose(table["inherited_val_acc"], direct)
    # Every subnet was trained twice, alone: from scratch and from its inherited weights.
    for s in picks:
        for where, kind in (("scratch/seed0", "scratch"), ("finetune", "finetune")):
            result = yaml.safe_load((run_dir / where / slug(s) / "result.json").read_text())
            assert result["mode"] == kind and result["epochs"] == 1
    manifest = yaml.safe_load((run_dir / "rank.yaml").read_text())
    assert manifest["stats"]["kendall_tau"] == pytest.approx(rank_stats(table)["kendall_tau"])
    assert manifest["verdict"] == ranked.verdict and ranked.verdict.startswith("verdict: ")
    assert manifest["recipe"]["epochs"] == 1 and manifest["recipe"]["batch_size"] == 64
    assert (run_dir / "rank.html").stat().st_size > 10_000


def test_scratch_runs_are_shared_and_reused(
    ranked, trained_checkpoint: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    scratch = ranked.run_dir / "scratch"
    checkpoints = sorted(scratch.glob("seed0/*/checkpoint.pt"))
    assert len(checkpoints) == 3
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    again = run_ranking(
        _config(trained_checkpoint, finetune=False, scratch_dir=str(scratch)), tmp_path / "b"
    )
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before  # reused, not retrained
    assert not (tmp_path / "b" / "scratch").exists() and not (tmp_path / "b" / "finetune").exists()
    pd.testing.assert_series_equal(
        again.table["scratch_test_acc"], ranked.table["scratch_test_acc"]
    )
    pd.testing.assert_series_equal(
        again.table["inherited_val_acc"], ranked.table["inherited_val_acc"]
    )
    assert again.table["finetune_test_acc"].isna().all()

    # The same subnets with another recipe are other runs: refused, not silently reused.
    other = _config(trained_checkpoint, finetune=False, scratch_dir=str(scratch))
    other["train"] = {**other["train"], "epochs": 2}  # type: ignore[dict-item]
    with pytest.raises(RankError, match=r"cannot resume .* other settings .*train.epochs") as e:
        run_ranking(other, tmp_path / "c")
    # its fix is the ranking's: the runs it made have no .hydra/overrides.yaml to look up
    assert ".hydra" not in str(e.value) and "another scratch_dir=" in str(e.value)


def test_run_dir_of_another_supernet_is_refused(ranked, random_checkpoint: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RankError, match="holds the ranking of another supernet"):
        run_ranking(_config(random_checkpoint), ranked.run_dir)


def test_checkpoint_without_data_is_refused(tmp_path: Path, digits_space: SearchSpace) -> None:
    from supernet import Supernet, save_checkpoint
    from supernet.common.errors import CheckpointError

    path = tmp_path / "bare.pt"
    save_checkpoint(path, Supernet(digits_space))
    with pytest.raises(CheckpointError, match="records no data config"):
        run_ranking(_config(path), tmp_path / "run")


# -- the command line ------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_with_two_processes(cli: Cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli(
        "search.rank",
        f"supernet={trained_checkpoint}",
        "k=3",
        "n_jobs=2",
        "train.epochs=1",
        "train.warmup_epochs=0",
        "png=false",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "\nverdict: Kendall τ" in result.stdout
    assert "inherited_val" in result.stdout and "scratch_test" in result.stdout
    table = pd.read_csv(tmp_path / "rank.csv")
    assert len(table) == 3 and table["finetune_test_acc"].notna().all()


def test_cli_user_errors(cli: Cli, trained_checkpoint: Path, tmp_path: Path) -> None:
    result = cli("search.rank", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: no supernet checkpoint given" in result.stderr
    result = cli(
        "search.rank", f"supernet={trained_checkpoint}", "train.lr=-1", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 2
    assert "error: stand-alone recipe: train.lr must be a positive number" in result.stderr


def _descendants(pid: int) -> list[int]:
    """The pids of ``pid``'s children and their children (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [p for c in map(int, children) for p in (c, *_descendants(c))]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as at a terminal, even if pytest's is ignored


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "last_line", "after"),
    [
        ("sigterm-parent", "terminated", 3.0),
        ("ctrl-c", "interrupted", 3.0),
        # while the workers still import torch (before their initializer runs): it printed
        # their KeyboardInterrupt tracebacks (0.2 s: past the parent's last submit, during which
        # it ignores Ctrl-C too, so that the workers it spawns inherit that)
        ("ctrl-c", "interrupted", 0.2),
        ("sigkill-parent", None, 3.0),
    ],
)
def test_the_training_workers_stop_with_search_rank(
    how: str, last_line: str | None, after: float, trained_checkpoint: Path, tmp_path: Path
) -> None:
    """``kill <pid>`` of search.rank (not its process group: a scheduler stops the one process)
    and Ctrl-C stop the stand-alone runs in progress too, at once, instead of waiting the
    minutes they take, and print one line after the banner: no worker's traceback, no resource
    tracker's "leaked semaphore" warning. ``kill -9`` of the parent alone (the OOM killer) left
    the workers training on, re-parented: they now die with it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "search.rank", f"supernet={trained_checkpoint}", "k=3",
               "n_jobs=2", "train.epochs=500", "finetune=false", "png=false",
               f"hydra.run.dir={tmp_path}/run"]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, which Ctrl-C signals as a whole
        preexec_fn=_default_sigint,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            workers = [p for p in _descendants(process.pid) if b"spawn_main" in _cmdline(p)]
        assert len(workers) == 2, "the two training workers did not start"
        time.sleep(after)  # into their training runs, or at once
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGKILL if how == "sigkill-parent" else signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)  # the runs take minutes: not waited for
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.kill()
        process.wait()
        left = [p for p in workers if _alive(p)]
        for pid in left:  # a failure must not leave them training for the rest of the suite
            os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived search.rank"
    if last_line is not None:
        assert process.returncode == 128 + (15 if how == "sigterm-parent" else 2), stderr
        lines = stderr.strip().splitlines()
        assert lines[0].startswith("ranking 3 subnets of") and lines[1:] == [last_line], stderr


def _sleeping_job(job: SubnetJob) -> dict[str, Any]:
    """A stand-in for a training run: sleeps ``job.cost`` seconds (in a worker process)."""
    time.sleep(job.cost)
    return {"label": job.label, "finished": time.monotonic()}


def test_each_result_is_reported_as_its_job_finishes(
    digits_space: SearchSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several processes, ``on_done`` saw every result only once all jobs had finished, so a
    benchmark that records each run as it ends recorded nothing until the last one."""
    from search.rank import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "_run", _sleeping_job)
    subnet = digits_space.smallest()
    jobs = [SubnetJob("scratch", subnet, {}, label="slow", cost=8.0)]
    jobs.append(SubnetJob("scratch", subnet, {}, label="fast", cost=0.5))
    seen: list[tuple[str, float]] = []
    results = run_jobs(jobs, 2, lambda r: seen.append((r["label"], time.monotonic())))
    assert [label for label, _ in seen] == ["fast", "slow"]
    assert seen[0][1] < results[0]["finished"] - 4  # "fast" reported while "slow" still slept


def test_a_rerun_leaves_no_output_of_the_previous_one(tmp_path: Path) -> None:
    """A rerun with png=false (or killed while Chromium drew the PNG) left the previous run's
    rank.png beside the new tables, a killed PNG write's temporary file piled up, and subnets/
    kept the YAMLs of subnets the new table does not name."""
    from search.rank.runner import _clear_previous_outputs

    for name in ("rank.png", ".rank.png.x1y2z3.tmp", ".rank.csv.a1b2c3.tmp", "rank.csv"):
        (tmp_path / name).write_text("old")
    (tmp_path / "subnets").mkdir()
    for name in ("kept.yaml", "dropped.yaml", "notes.txt"):
        (tmp_path / "subnets" / name).write_text("old")
    _clear_previous_outputs(tmp_path, {"kept.yaml"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank.csv", "subnets"]
    assert sorted(p.name for p in (tmp_path / "subnets").iterdir()) == ["kept.yaml", "notes.txt"]


def test_a_rerun_with_other_settings_says_it_replaces_the_ranking(tmp_path: Path) -> None:
    from search.rank.runner import _replacing_note

    old = {"k": 5, "seeds": [0, 1], "recipe": {"epochs": 3, "lr": 0.001}, "stats": {}}
    (tmp_path / "rank.yaml").write_text(yaml.safe_dump(old))
    same = {"k": 5, "seeds": [0, 1], "recipe": {"epochs": 3, "lr": 0.001}}
    assert _replacing_note(tmp_path, same) is None
    other = {"k": 3, "seeds": [0, 1], "recipe": {"epochs": 2, "lr": 0.001}}
    note = _replacing_note(tmp_path, other)
    assert note is not None and note.startswith(f"note: {tmp_path} holds a ranking with other")
    assert "(k 5 -> 3, recipe.epochs 3 -> 2)" in note and "lr" not in note
    assert _replacing_note(tmp_path / "new", other) is None


def test_the_figure_keeps_its_parts_apart() -> None:
    """The colour bar sat between the panels over the rankers' names, the legend inside them over
    the lower bars, and the title ran off the right edge."""
    from search.rank.table import rank_figure

    n = 4
    table = pd.DataFrame(
        {
            "arch": [f"D{i}" for i in range(n)],
            "flops": np.linspace(1e6, 4e6, n),
            "params": np.linspace(1e4, 4e4, n),
            "inherited_val_acc": [0.3, 0.35, 0.4, 0.38],
            "inherited_test_acc": [0.31, 0.34, 0.41, 0.37],
            "scratch_test_acc": [0.2, 0.18, 0.25, 0.22],
            "scratch_test_std": [0.01, 0.02, 0.01, 0.03],
            "finetune_test_acc": [0.5, 0.55, 0.6, 0.52],
        }
    )
    rankers = pd.DataFrame(
        {
            "ranker": ["supernet", "params", "flops", "dss"],
            "source": ["inherited", "count", "count", "proxy"],
            "kendall_tau": [0.2, 0.4, 0.4, -0.1],
            "kendall_p": [0.5, 0.3, 0.3, 0.9],
            "spearman_rho": [0.3, 0.5, 0.5, -0.2],
            "cost_s": [100.0, 0.0, 0.0, 2.0],
        }
    )
    stats = {"kendall_tau": 0.2, "spearman_rho": 0.3, "subnets": n, "seed_tau_split_half": 0.4}
    fig = rank_figure(table, stats, rankers)
    right_panel_ends = fig.layout.xaxis2.domain[1]
    assert fig.data[0].marker.colorbar.x > right_panel_ends  # beside the panels, not between
    assert fig.layout.legend.y < 0 and fig.layout.legend.orientation == "h"  # below them
    assert len(fig.layout.title.text) <= 80  # one line on the 1400-px PNG
    names = [trace.name for trace in fig.data]
    assert "noise ceiling: seeds' split-half τ 0.40" in names
    assert "trained from scratch (mean ± std of seeds)" in names


def test_scratch_dir_of_another_run_is_refused(tmp_path: Path) -> None:
    """scratch_dir=<a fine-tune's run dir> filled it with seed<s>/ runs."""
    (tmp_path / "ft").mkdir()
    (tmp_path / "ft" / "result.json").write_text("{}")
    config = {"supernet": str(tmp_path / "x.pt"), "scratch_dir": str(tmp_path / "ft")}
    with pytest.raises(RankError, match=r"scratch_dir=.*ft holds a subnet training run \(result"):
        run_ranking(config, tmp_path / "run")
    assert sorted(p.name for p in (tmp_path / "ft").iterdir()) == ["result.json"]
