"""python -m search.rank band=: parsing a cost window, picking k distinct subnets spread inside it,
and the error when it holds fewer than k."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from search.costs import CostModel
from search.rank import Band, BandError, RankError, RankSettings, pick_in_band, run_ranking
from search.rank.band import parse_window
from supernet import SearchSpace, complexity
from supernet.checkpoint import load_supernet


# -- the syntax ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "window"),
    [
        (["8M", "10M"], (8e6, 10e6)),
        ([8_000_000, 1e7], (8e6, 10e6)),
        ("8.9M+-10%", (8.01e6, 9.79e6)),
        ("10M±5%", (9.5e6, 10.5e6)),
        ("250k+-20k", (230e3, 270e3)),
        (["9M", "9M"], (9e6, 9e6)),
    ],
)
def test_window_forms(value: object, window: tuple[float, float]) -> None:
    assert parse_window("band.flops", value) == pytest.approx(window)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10M", r"band.flops must be \[low, high\] \(like \[8M,10M\]\) or centre\+-percent"),
        (["8M"], r"must be \[low, high\]"),
        (["8M", "9M", "10M"], r"must be \[low, high\]"),
        ("tenM+-10%", r"band\.flops: the centre must be a number like 2e6 or 2M, got 'tenM'"),
        (["8X", "10M"], r"the low end must be a number like 2e6 or 2M, got '8X' \(in \['8X'"),
        # each end's own problem, not the form's (they were all "must be [low, high]")
        (["-1M", "10M"], r"the low end must be positive, got '-1M'"),
        ([0, "10M"], r"the low end must be positive, got 0 .*; pass band\.flops=\[8M,10M\]"),
        (["1M", "inf"], r"the high end must be a finite number, got 'inf'"),
        (["nan", "2M"], r"the low end must be a finite number, got 'nan'"),
        ("2M+-0%", r"the width must be positive, got '0'"),
        (
            ["10M", "8M"],
            r"the low end 10M FLOPs is above the high end 8M FLOPs; write \[low, high\]",
        ),
        ("5M+-100%", r"reaches zero or below"),
        ("5M+-6M", r"reaches zero or below"),
        (True, r"must be \[low, high\]"),
    ],
)
def test_malformed_windows(value: object, message: str) -> None:
    with pytest.raises(BandError, match=message):
        parse_window("band.flops", value)


def test_band_config_and_settings() -> None:
    band = Band.from_config({"flops": "8.9M+-10%", "params": None, "latency_ms": None})
    assert band.metrics == ("flops",) and band.metric == "flops" and bool(band)
    assert band.contains({"flops": 9e6}) and not band.contains({"flops": 9.8e6})
    assert band.to_config() == {"flops": [pytest.approx(8.01e6), pytest.approx(9.79e6)]}
    both = Band.from_config({"flops": ["1M", "2M"], "params": ["10k", "20k"]})
    assert both.metric == "params"  # spread across the first of params, macs, flops, latency_ms
    assert not Band.from_config({"flops": None}) and not Band.from_config(None)
    with pytest.raises(BandError, match=r"unknown band cost.*band.flop; the costs are params"):
        Band.from_config({"flop": ["1M", "2M"]})
    settings = RankSettings.from_config({"supernet": "x.pt", "band": {"flops": ["1M", "2M"]}})
    assert settings.band is not None and settings.band.metrics == ("flops",)
    with pytest.raises(BandError, match=r"band must be a mapping, .*; pass band\.flops="):
        RankSettings.from_config({"supernet": "x.pt", "band": "1M"})


# -- the picks -------------------------------------------------------------------------------------
def test_picks_are_k_distinct_subnets_spread_inside_the_band() -> None:
    space = SearchSpace.preset("fashion_mnist")
    costs = CostModel(space)
    band = Band.from_config({"flops": "25M+-10%"})
    ((_, low, high),) = band.windows
    picks = pick_in_band(space, 10, band, costs, seed=0, pool_size=1024)
    flops = [complexity.flops(space, s) for s in picks]
    assert len(set(picks)) == 10 and all(space.contains(s) for s in picks)
    assert all(low <= f <= high for f in flops)
    assert flops == sorted(flops)
    # spread across the band, not bunched where random subnets are most common
    assert flops[0] < low + 0.2 * (high - low) and flops[-1] > high - 0.2 * (high - low)
    assert pick_in_band(space, 10, band, costs, seed=0, pool_size=1024) == picks
    assert pick_in_band(space, 10, band, costs, seed=1, pool_size=1024) != picks


def test_a_band_spread_across_params_keeps_every_cost_window() -> None:
    space = SearchSpace.preset("fashion_mnist")
    band = Band.from_config({"params": ["250k", "350k"], "flops": ["25M", "40M"]})
    picks = pick_in_band(space, 5, band, CostModel(space), seed=0, pool_size=1024)
    assert len(set(picks)) == 5
    for s in picks:
        assert 250e3 <= complexity.params(space, s) <= 350e3
        assert 25e6 <= complexity.flops(space, s) <= 40e6


def _all_subnets(space: SearchSpace) -> set[object]:
    rng = random.Random(0)
    return {space.sample(rng) for _ in range(5000)} | {space.smallest(), space.largest()}


def test_a_band_with_fewer_than_k_subnets_says_how_many(digits_space: SearchSpace) -> None:
    every = _all_subnets(digits_space)
    assert len(every) == 40  # DIGITS_SMALL, exhaustively
    flops = sorted({complexity.flops(digits_space, s) for s in every})
    low, high = flops[3], flops[5]
    inside = [s for s in every if low <= complexity.flops(digits_space, s) <= high]
    band = Band.from_config({"flops": [low, high]})
    costs = CostModel(digits_space)
    picks = pick_in_band(digits_space, len(inside), band, costs, seed=0, pool_size=256)
    assert set(picks) == set(inside)  # exactly as many as it holds: all of them
    with pytest.raises(
        BandError,
        match=rf"holds {len(inside)} distinct subnet\(s\) in [\d,]+ random draws, fewer than "
        rf"k={len(inside) + 1} \(this space spans .*\); widen the band, lower k, or raise "
        r"pool_size \(now 256\)",
    ):
        pick_in_band(digits_space, len(inside) + 1, band, costs, seed=0, pool_size=256)
    # two costs: the message gives the space's range in each; a width rounding would hide
    # (2M+-10 is ± 10 FLOPs) is shown exact
    both = Band.from_config({"params": ["1", "2"], "flops": "2M+-10"})
    with pytest.raises(BandError) as few:
        pick_in_band(digits_space, 3, both, costs, seed=0, pool_size=256)
    message = str(few.value)
    assert "1,999,990 <= flops <= 2,000,010" in message
    assert re.search(r"spans \S+ params to \S+ params and \S+ FLOPs to \S+ FLOPs\)", message)
    below = Band.from_config({"flops": ["1", "2"]})
    with pytest.raises(BandError, match=r"holds 0 distinct subnet\(s\)"):
        pick_in_band(digits_space, 3, below, costs, seed=0, pool_size=256)


# -- a whole run -----------------------------------------------------------------------------------
def test_ranking_inside_a_band(trained_checkpoint: Path, tmp_path: Path) -> None:
    space = load_supernet(trained_checkpoint)[0].space
    every = _all_subnets(space)
    flops = sorted(complexity.flops(space, s) for s in every)
    low, high = flops[len(flops) // 4], flops[3 * len(flops) // 4]
    result = run_ranking(
        {
            "supernet": str(trained_checkpoint),
            "k": 3,
            "band": {"flops": [low, high]},
            "finetune": False,
            "proxies": ["flops", "depth"],
            "png": False,
            "train": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0},
        },
        tmp_path,
    )
    table = pd.read_csv(tmp_path / "rank.csv")
    assert len(table) == 3 and table["arch"].nunique() == 3
    assert table["flops"].between(low, high).all()
    manifest = yaml.safe_load((tmp_path / "rank.yaml").read_text())
    assert manifest["band"] == {"flops": [low, high]}
    assert [r["ranker"] for r in manifest["rankers"]] == ["supernet", "flops", "depth"]
    assert result.table["arch"].tolist() == table["arch"].tolist()


# -- a latency band: the profile of the target the options name --------------------------------
def test_a_latency_band_uses_the_profile_of_the_named_target(
    digits_space: SearchSpace, tmp_path: Path
) -> None:
    from search.latency import ProfileError, calibrate
    from search.rank.runner import _costs
    from search.rank.table import rank_table

    result = calibrate(
        digits_space,
        batch_size=1,
        threads=1,
        n_samples=6,
        n_holdout=2,
        warmup=1,
        repeats=2,
        rounds=1,
        progress=False,
    )
    result.profile.save(tmp_path / "one_thread.yaml")
    band = Band.from_config({"latency_ms": [0.001, 1e6]})
    base = {
        "supernet": "x.pt",
        "latency_profile": str(tmp_path),
        "band": {"latency_ms": [0.001, 1e6]},
    }
    settings = RankSettings.from_config({**base, "latency_threads": 1})
    costs, profile = _costs(settings, digits_space, band)
    subnet = digits_space.largest()
    assert costs(subnet)["latency_ms"] == result.profile.predict_ms(digits_space, subnet)
    # what rank.yaml records: the file found in the directory, and the device it is for
    assert profile is not None and profile.record() == {
        **result.profile.target(),
        "profile": str((tmp_path / "one_thread.yaml").resolve()),
        "calibrated": result.profile.created,
    }
    # rank.csv: the band's latencies beside the other costs
    subnets = [digits_space.smallest(), subnet]
    results = [
        {"kind": kind, "subnet": s, "val_acc": 0.5, "test_acc": 0.5, "wall_s": 1.0, "seed": 0}
        for s in subnets
        for kind in ("inherit", "scratch")
    ]
    latencies = profile.predict_many(digits_space, subnets).tolist()
    table = rank_table(digits_space, subnets, results, latency_ms=latencies)
    assert list(table.columns[table.columns.get_loc("flops") + 1 :][:1]) == ["latency_ms"]
    assert table["latency_ms"].tolist() == latencies
    # a profile of another target (here: batch size) does not stand in for it
    with pytest.raises(ProfileError, match=r"band\.latency_ms needs predicted latency"):
        _costs(
            RankSettings.from_config({**base, "latency_threads": 1, "latency_batch_size": 2}),
            digits_space,
            band,
        )


def test_n_jobs_beyond_the_cores_is_refused() -> None:
    from supernet.common.resources import cpu_cores

    with pytest.raises(RankError, match=r"n_jobs=\d+ is more than the \d+ CPU core"):
        RankSettings.from_config({"supernet": "x.pt", "n_jobs": cpu_cores() + 1})


def test_latency_device_is_checked_for_its_form_and_named() -> None:
    base = {"supernet": "x.pt"}
    assert RankSettings.from_config({**base, "latency_device": "cuda:1"}).latency_device == "cuda:1"
    with pytest.raises(RankError, match=r"latency_device must be the device .* got 'tpu'"):
        RankSettings.from_config({**base, "latency_device": "tpu"})  # even without a latency band
    with pytest.raises(RankError, match=r"got 'cpu:0'; pass latency_device=cpu"):
        RankSettings.from_config({**base, "latency_device": "cpu:0"})  # what profiles never say
