"""The proxies python -m search.rank holds the supernet against: cost counts and zero-cost proxies
(NASWOT, synflow, TF-TAS's DSS), each deterministic for a seed, timed, and recorded."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import kendalltau

from search.rank import (
    PROXIES,
    RankError,
    RankSettings,
    proxy_column,
    run_ranking,
    score_proxies,
)
from search.rank.proxies import blocks, init_model, proxy_batches
from supernet import SearchSpace, complexity
from supernet.checkpoint import load_supernet

ZERO_COST = [name for name, p in PROXIES.items() if p.kind == "zero-cost"]


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace(
        embed_dim=(16, 32),
        depth=(2, 3),
        num_heads=(1, 2),
        mlp_ratio=(1.0, 2.0),
        img_size=8,
        patch_size=2,
        in_chans=1,
        num_classes=10,
        head_dim=8,
        name="digits_small",
    )


@pytest.fixture(scope="module")
def batches(space: SearchSpace) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return proxy_batches({"name": "digits"}, space, batches=2, batch_size=32, seed=0)


def test_the_zero_cost_proxies_are_the_papers() -> None:
    assert ZERO_COST == ["naswot", "synflow", "dss"]
    assert "ICML 2021" in PROXIES["naswot"].source
    assert "NeurIPS 2020" in PROXIES["synflow"].source
    assert "CVPR 2022" in PROXIES["dss"].source


def test_batches_are_the_datas_validation_images(space: SearchSpace) -> None:
    from supernet.data import build_data
    from supernet.evaluation import materialize

    got = proxy_batches({"name": "digits"}, space, batches=2, batch_size=32, seed=0)
    assert [len(x) for x, _ in got] == [32, 32] and got[0][0].shape[1:] == (1, 8, 8)
    val_x, _ = materialize(build_data({"name": "digits"}).val)
    rows = {tuple(r.flatten().tolist()) for r in val_x}
    assert all(tuple(r.flatten().tolist()) in rows for x, _ in got for r in x)
    again = proxy_batches({"name": "digits"}, space, batches=2, batch_size=32, seed=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, again, strict=True))
    # more than the split holds: every validation image once, no more
    every = proxy_batches({"name": "digits"}, space, batches=100, batch_size=64, seed=0)
    assert sum(len(y) for _, y in every) == len(val_x) < 100 * 64


def test_proxies_on_initial_weights_are_those_of_the_seeds_scratch_run(space: SearchSpace) -> None:
    from supernet import family_of
    from supernet.train.supernet_training import seed_everything

    subnet = space.largest()
    seed_everything(3)  # what a stand-alone run with seed 3 does before building its model
    scratch = family_of(space).build_model(space, subnet)
    state = torch.get_rng_state()
    model = init_model(space, subnet, 3)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is left alone
    for (name, a), b in zip(scratch.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("name", list(PROXIES))
def test_each_proxy_is_deterministic_for_a_seed_and_timed(
    name: str, space: SearchSpace, batches: Any
) -> None:
    subnets = [space.smallest(), space.largest()]
    first = score_proxies(space, subnets, [name], batches, seed=0)
    again = score_proxies(space, subnets, [name], batches, seed=0)
    assert first.scores == again.scores
    assert all(math.isfinite(v) for v in first.scores[name])
    assert len(first.seconds[name]) == 2 and all(t > 0 for t in first.seconds[name])
    if PROXIES[name].kind == "zero-cost":  # scored on the seed's initial weights
        other = score_proxies(space, subnets, [name], batches, seed=1)
        assert other.scores[name] != first.scores[name]


def test_cost_proxies_count(space: SearchSpace) -> None:
    subnet = space.uniform(32, 3, 2, 2.0)
    scores = score_proxies(space, [subnet], ["params", "flops", "depth"], [], seed=0).scores
    assert scores["params"] == [complexity.params(space, subnet)]
    assert scores["flops"] == [complexity.flops(space, subnet)]
    assert scores["depth"] == [3]


def test_depth_is_the_total_number_of_blocks() -> None:
    class PerStage:  # a family whose subnets give a depth per stage (Swin's)
        family = "swin"

        def to_dict(self) -> dict[str, object]:
            return {"family": "swin", "depth": [2, 2, 6, 2]}

    assert blocks(PerStage()) == 12  # type: ignore[arg-type]
    assert blocks(SearchSpace.preset("digits").largest()) == max(SearchSpace.preset("digits").depth)


@pytest.mark.parametrize("name", ZERO_COST)
def test_a_strictly_wider_model_scores_higher(name: str, space: SearchSpace, batches: Any) -> None:
    """Each score sums over units or weights, and the papers say it grows with them: NASWOT's
    K_H counts the units two images agree on, synflow's R = 1ᵀ(Π|W|)1 sums over every path, TF-TAS
    sums nuclear norms and saliencies over the attention and MLP weights. At the same depth, a
    model wider in every block (embedding, heads, MLP) scores higher, for every seed tried."""
    narrow = space.uniform(16, 3, 1, 1.0)
    wide = space.uniform(32, 3, 2, 2.0)
    for seed in range(3):
        scores = score_proxies(space, [narrow, wide], [name], batches, seed=seed).scores[name]
        assert scores[1] > scores[0], (seed, scores)


def test_unknown_or_repeated_proxies_are_refused(space: SearchSpace) -> None:
    with pytest.raises(RankError, match=r"unknown proxies \['grasp'\]; the proxies are params"):
        score_proxies(space, [space.smallest()], ["grasp"], [], seed=0)
    for bad in (["grasp"], ["flops", "flops"]):
        with pytest.raises(RankError, match="proxies must name each of params, flops, depth"):
            RankSettings.from_config({"supernet": "x.pt", "proxies": bad})
    with pytest.raises(RankError, match=r"proxies must be a list like \[params,flops"):
        RankSettings.from_config({"supernet": "x.pt", "proxies": "flops"})
    assert RankSettings.from_config({"supernet": "x.pt", "proxies": []}).proxies == ()
    with pytest.raises(RankError, match="proxy_batch_size must be an integer ≥ 2"):
        RankSettings.from_config({"supernet": "x.pt", "proxy_batch_size": 1})


# -- a whole run -----------------------------------------------------------------------------------
def test_every_proxy_is_ranked_and_recorded(trained_checkpoint: Path, tmp_path: Path) -> None:
    run_ranking(
        {
            "supernet": str(trained_checkpoint),
            "k": 4,
            "finetune": False,
            "proxy_batches": 2,
            "proxy_batch_size": 32,
            "png": False,
            "train": {"epochs": 1, "batch_size": 64, "warmup_epochs": 0},
        },
        tmp_path,
    )
    table = pd.read_csv(tmp_path / "rank.csv")
    manifest = yaml.safe_load((tmp_path / "rank.yaml").read_text())
    rankers = {r["ranker"]: r for r in manifest["rankers"]}
    assert list(rankers) == ["supernet", *PROXIES]
    space = load_supernet(trained_checkpoint)[0].space
    picks = [
        space.subnet_from_dict(yaml.safe_load((tmp_path / "subnets" / f"{s}.yaml").read_text()))
        for s in table["subnet"]
    ]
    batches = proxy_batches({"name": "digits"}, space, 2, 32, seed=0)
    for name in ZERO_COST:
        column = f"proxy_{name}"
        assert table[f"{column}_s"].gt(0).all(), name
        # the scores score_proxies gives on the supernet's data with the run's seed
        expected = score_proxies(space, picks, [name], batches, seed=0).scores[name]
        assert table[column].tolist() == pytest.approx(expected, rel=1e-9)
        assert rankers[name]["cost_s"] == pytest.approx(table[f"{column}_s"].sum())
    for name, row in rankers.items():
        column = "inherited_val_acc" if name == "supernet" else proxy_column(name)
        tau = kendalltau(table[column], table["scratch_test_acc"]).statistic
        if math.isnan(tau):  # a constant ranking over these 4 subnets (depth can be)
            assert row["kendall_tau"] is None
        else:
            assert row["kendall_tau"] == pytest.approx(tau)
    assert manifest["proxies"]["names"] == list(PROXIES)
    assert manifest["proxies"]["images_loaded"] == 2 * 32
    # the cost proxies rank by the cost columns, which stay integer counts
    assert table["params"].dtype.kind == "i" and table["flops"].dtype.kind == "i"
    assert manifest["stats"]["best_proxy"] in PROXIES
    assert manifest["proxy_verdict"].startswith("proxies: the best proxy is ")
    assert "rank correlation" in (tmp_path / "rank.html").read_text()
