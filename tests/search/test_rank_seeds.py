"""python -m search.rank seeds=: stand-alone references over several seeds, their mean, the
seed-to-seed τ (the noise ceiling), the noise and proxy verdicts."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import kendalltau

from search.rank import (
    RankError,
    RankSettings,
    noise_verdict,
    pairwise_tau,
    proxy_verdict,
    run_ranking,
    split_half_tau,
)
from search.rank.noise import MAX_SPLITS, _halves, chance_p, difference_interval


# -- the statistics --------------------------------------------------------------------------------
def _kt(a: np.ndarray, b: np.ndarray) -> float:
    return float(kendalltau(a, b).statistic)


def test_split_half_tau_of_many_seeds_averages_random_splits() -> None:
    """Every split of n seeds grows as C(n, n/2): 20 seeds took 40 s, 30 would take hours.
    Beyond MAX_SPLITS splits a seeded sample of distinct ones stands in, close to them all."""
    assert len(_halves(12)) == math.comb(12, 6) <= MAX_SPLITS  # every split, while few
    halves = _halves(14)
    assert len(halves) == len(set(halves)) == MAX_SPLITS < math.comb(14, 7)
    assert all(len(h) == 7 and list(h) == sorted(h) for h in halves) and halves == _halves(14)
    rng = np.random.default_rng(1)
    runs = rng.normal(size=(8, 14)) + np.arange(8)[:, None] * 0.5
    every = [
        kendalltau(runs[:, list(h)].mean(1), np.delete(runs, list(h), axis=1).mean(1)).statistic
        for h in itertools.combinations(range(14), 7)
    ]
    assert split_half_tau(runs) == pytest.approx(np.mean(every), abs=0.02)
    assert not math.isnan(split_half_tau(rng.normal(size=(8, 40))))  # 40 seeds: no hang


def test_pairwise_and_split_half_tau() -> None:
    rng = np.random.default_rng(0)
    truth = np.linspace(0.80, 0.82, 8)
    runs = truth[:, None] + rng.normal(0, 0.006, (8, 4))  # 8 subnets x 4 seeds
    pairs = [_kt(runs[:, i], runs[:, j]) for i, j in itertools.combinations(range(4), 2)]
    assert pairwise_tau(runs) == pytest.approx(np.mean(pairs))
    halves = [
        _kt(runs[:, list(a)].mean(1), runs[:, [i for i in range(4) if i not in a]].mean(1))
        for a in itertools.combinations(range(4), 2)
    ]
    assert split_half_tau(runs) == pytest.approx(np.mean(halves))
    three = runs[:, :3]  # odd: one seed against the mean of the other two
    singles = [_kt(three[:, i], np.delete(three, i, axis=1).mean(1)) for i in range(3)]
    assert split_half_tau(three) == pytest.approx(np.mean(singles))
    assert split_half_tau(runs[:, :2]) == pytest.approx(pairwise_tau(runs[:, :2]))
    same = np.repeat(truth[:, None], 3, axis=1)
    assert pairwise_tau(same) == pytest.approx(1.0) and split_half_tau(same) == pytest.approx(1)
    assert math.isnan(pairwise_tau(runs[:, :1])) and math.isnan(split_half_tau(runs[:, :1]))
    # more seeds average the noise out: the split-half tau of 4 seeds beats the pairwise one here
    noisy = truth[:, None] + rng.normal(0, 0.01, (8, 16))
    assert split_half_tau(noisy) > pairwise_tau(noisy)


def test_difference_interval() -> None:
    reference = np.arange(10.0)
    rng = np.random.default_rng(1)
    good = reference + rng.normal(0, 0.5, 10)
    bad = rng.permutation(reference)
    diff, low, high = difference_interval(good, bad, reference)
    assert diff == pytest.approx(_kt(good, reference) - _kt(bad, reference))
    assert 0 < low <= diff <= high
    assert difference_interval(good, good, reference) == (0.0, 0.0, 0.0)
    assert difference_interval(good, bad, reference) == (diff, low, high)  # seeded
    assert all(map(math.isnan, difference_interval(np.ones(10), bad, reference)))


def _stats(**overrides: object) -> dict[str, object]:
    base = {
        "kendall_tau": 0.7,
        "kendall_p": 0.001,
        "seeds": 3,
        "seed_tau_pairwise": 0.6,
        "seed_tau_split_half": 0.65,
        "subnets": 10,
    }
    return {**base, **overrides}


def test_noise_verdicts() -> None:
    assert "1 stand-alone seed(s), so the noise ceiling is unknown; pass seeds=[0,1,2]" in (
        noise_verdict(_stats(seeds=1, seed_tau_split_half=math.nan))
    )
    line = noise_verdict(_stats(seed_tau_split_half=0.3, seed_tau_pairwise=0.2))
    assert "agree at τ = 0.30 (split-half over 3 seeds; pairwise 0.20), below 0.6" in line
    assert "too noisy to judge the supernet (τ = 0.70)" in line and "train longer" in line
    line = noise_verdict(_stats(kendall_tau=0.2, kendall_p=0.4))
    assert "τ = 0.20 cannot be told apart from a random order (p = 0.4)" in line
    assert "cannot be told apart" in noise_verdict(_stats(kendall_tau=-0.6, kendall_p=0.01))
    assert "is above the noise ceiling" in noise_verdict(_stats())
    assert "is below the noise ceiling" in noise_verdict(_stats(kendall_tau=0.6))
    # seeds that agree at τ 0.67 over 4 subnets: a random order does as well 1 time in 3
    line = noise_verdict(_stats(seed_tau_split_half=0.67, subnets=4))
    assert "but with 4 subnets a random order agrees as well 33% of the time" in line
    assert "no ranker can be judged" in line and "rank more subnets (k)" in line


def test_chance_p_is_kendalls_exact_p() -> None:
    for n in (4, 7, 10):
        rng = np.random.default_rng(n)
        for _ in range(5):
            order = rng.permutation(n)
            exact = kendalltau(range(n), order)
            assert chance_p(exact.statistic, n) == pytest.approx(exact.pvalue)
    assert math.isnan(chance_p(math.nan, 10)) and math.isnan(chance_p(0.5, 1))


def test_proxy_verdicts() -> None:
    base = {"best_proxy": "flops", "best_proxy_tau": 0.5}
    line = proxy_verdict(
        {
            **base,
            "supernet_minus_best_proxy": 0.3,
            "supernet_minus_best_proxy_low": 0.1,
            "supernet_minus_best_proxy_high": 0.5,
        }
    )
    assert line == (
        "proxies: the best proxy is flops (τ = 0.50); the supernet beats it "
        "(τ difference +0.30, 90% bootstrap interval +0.10 to +0.50)"
    )
    tie = {
        **base,
        "supernet_minus_best_proxy": 0.1,
        "supernet_minus_best_proxy_low": -0.2,
        "supernet_minus_best_proxy_high": 0.4,
    }
    assert "the supernet cannot be told apart from it" in proxy_verdict(tie)
    worse = {**tie, "supernet_minus_best_proxy_high": -0.05, "supernet_minus_best_proxy": -0.3}
    assert "it beats the supernet" in proxy_verdict(worse)
    assert "none ranked" in proxy_verdict({"best_proxy": None})


@pytest.mark.parametrize(
    "seeds", [[0, 0], [], [-1], "0,1", 3, [0.5, 1], [True, 2], [0, 2**32]], ids=lambda v: repr(v)
)
def test_bad_seeds(seeds: object) -> None:
    with pytest.raises(RankError, match=r"seeds must be a list of distinct non-negative integers"):
        RankSettings.from_config({"supernet": "x.pt", "seeds": seeds})


def test_seeds_default_to_the_seed() -> None:
    assert RankSettings.from_config({"supernet": "x.pt", "seed": 4}).scratch_seeds == (4,)
    settings = RankSettings.from_config({"supernet": "x.pt", "seeds": [2, 0, 1]})
    assert settings.scratch_seeds == (2, 0, 1)


# -- a whole run -----------------------------------------------------------------------------------
def test_ranking_over_three_seeds(trained_checkpoint: Path, tmp_path: Path) -> None:
    result = run_ranking(
        {
            "supernet": str(trained_checkpoint),
            "k": 4,
            "seeds": [0, 1, 2],
            "finetune": False,
            "proxies": ["params"],
            "png": False,
            "train": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0},
        },
        tmp_path,
    )
    table = pd.read_csv(tmp_path / "rank.csv")
    seeds = ["scratch_test_acc_seed0", "scratch_test_acc_seed1", "scratch_test_acc_seed2"]
    assert set(seeds) <= set(table.columns)
    # each seed is its own run, started from its own initial weights
    for seed, column in enumerate(seeds):
        for row in table.itertuples(index=False):
            run = tmp_path / "scratch" / f"seed{seed}" / row.subnet
            done = yaml.safe_load((run / "result.json").read_text())
            assert done["test_acc"] == pytest.approx(getattr(row, column))
            assert torch.load(run / "checkpoint.pt", weights_only=True)["seed"] == seed
    assert table[seeds].nunique(axis=1).max() > 1  # the seeds differ somewhere
    np.testing.assert_allclose(table["scratch_test_acc"], table[seeds].mean(axis=1))
    np.testing.assert_allclose(table["scratch_test_std"], table[seeds].std(axis=1, ddof=1))
    accuracies = table[seeds].to_numpy()
    manifest = yaml.safe_load((tmp_path / "rank.yaml").read_text())
    assert manifest["seeds"] == [0, 1, 2]
    stats = manifest["stats"]
    assert stats["seeds"] == 3
    for key, value in (
        ("seed_tau_pairwise", pairwise_tau(accuracies)),
        ("seed_tau_split_half", split_half_tau(accuracies)),
    ):
        if math.isnan(value):  # a constant column on this tiny run: recorded as null
            assert stats[key] is None
        else:
            assert stats[key] == pytest.approx(value)
    expected_tau = kendalltau(table["inherited_val_acc"], table["scratch_test_acc"]).statistic
    assert stats["kendall_tau"] == pytest.approx(expected_tau)
    assert manifest["noise_verdict"] == noise_verdict(result.stats)
    assert manifest["noise_verdict"].startswith("noise: ")
    assert manifest["proxy_verdict"].startswith("proxies: ")
    lines = [manifest["verdict"], manifest["noise_verdict"], manifest["proxy_verdict"]]
    assert result.lines == lines


def test_a_scratch_dir_that_is_a_file_is_refused_before_anything_runs(tmp_path: Path) -> None:
    file = tmp_path / "metrics.csv"
    file.write_text("epoch\n")
    message = r"^scratch_dir=.*metrics\.csv is a file, not a directory; "
    with pytest.raises(RankError, match=message):
        RankSettings.from_config({"supernet": "x.pt", "scratch_dir": str(file)})
    settings = RankSettings.from_config({"supernet": "x.pt", "scratch_dir": str(tmp_path / "new")})
    assert settings.scratch_dir == tmp_path / "new"
