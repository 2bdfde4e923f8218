from __future__ import annotations

import dataclasses
import random
import subprocess
import sys

import optuna
import pytest

from supernet.space import SpaceError
from supernet.swin import codec
from supernet.swin.space import SwinSpace, SwinSubnet

PRESETS = ["swin_digits", "swin_fashion_mnist", "swin_tiny"]


@pytest.mark.parametrize("preset", PRESETS)
def test_params_round_trip(preset: str) -> None:
    space = SwinSpace.preset(preset)
    rng = random.Random(preset)
    for subnet in [space.smallest(), space.largest(), *(space.sample(rng) for _ in range(100))]:
        params = codec.to_params(subnet)
        assert codec.from_params(params) == subnet
        assert len(params) == 2 * space.num_stages + 3 * sum(subnet.depth)
        assert codec.suggest(optuna.trial.FixedTrial(params), space) == subnet


def test_parameter_names_follow_the_stages_and_active_blocks() -> None:
    space = SwinSpace.preset("swin_digits")
    subnet = space.validate(
        SwinSubnet((16, 48), (1, 2), ((2,), (2, 4)), ((3.0,), (2.0, 4.0)), ((4,), (2, 2)))
    )
    assert codec.to_params(subnet) == {
        "s0.depth": 1,
        "s0.embed_dim": 16,
        "s0.b0.num_heads": 2,
        "s0.b0.mlp_ratio": 3.0,
        "s0.b0.window_size": 4,
        "s1.depth": 2,
        "s1.embed_dim": 48,
        "s1.b0.num_heads": 2,
        "s1.b0.mlp_ratio": 2.0,
        "s1.b0.window_size": 2,
        "s1.b1.num_heads": 4,
        "s1.b1.mlp_ratio": 4.0,
        "s1.b1.window_size": 2,  # a single choice is still suggested
    }


def test_suggest_in_a_study_and_enqueue() -> None:
    space = SwinSpace.preset("swin_fashion_mnist")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    wanted = space.largest()
    study.enqueue_trial(codec.to_params(wanted))
    seen = []
    for _ in range(20):
        trial = study.ask()
        subnet = codec.suggest(trial, space)
        space.validate(subnet)
        assert trial.params == codec.to_params(subnet)
        study.tell(trial, 0.0)
        seen.append(subnet)
    assert seen[0] == wanted
    assert len(set(seen)) == 20
    assert all(codec.from_params(t.params) == s for t, s in zip(study.trials, seen, strict=True))
    distributions = study.trials[1].distributions
    assert distributions["s1.b0.window_size"].choices == (7,)
    assert distributions["s0.b0.window_size"].choices == (7, 14)


def test_from_params_is_none_when_incomplete_or_malformed() -> None:
    params = codec.to_params(SwinSpace.preset("swin_digits").largest())
    assert codec.from_params({}) is None
    assert codec.from_params({"depth": 2, "embed_dim": 32}) is None  # a ViT trial
    for key in ("s1.b2.window_size", "s0.embed_dim", "s1.depth"):
        partial = dict(params)
        del partial[key]
        assert codec.from_params(partial) is None, key
    assert codec.from_params({**params, "s3.depth": 1}) is None
    assert codec.from_params({**params, "s0.b0.num_heads": "two"}) is None
    assert codec.from_params({**params, "s0.depth": 0}) is None
    assert codec.from_params({**params, "lr": 0.1}) == codec.from_params(params)


def test_codec_does_not_import_optuna() -> None:
    code = "import sys, supernet.swin.codec; assert 'optuna' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("preset", PRESETS)
def test_mutate_and_crossover_give_valid_subnets(preset: str) -> None:
    space = SwinSpace.preset(preset)
    rng = random.Random(preset)
    parents = [space.sample(rng) for _ in range(30)]
    changed = 0
    for parent in parents:
        for probs in ((0.2, 0.4), (1.0, 1.0), (0.0, 0.0)):
            child = codec.mutate(space, parent, rng, mutation_prob=probs[0], resample_prob=probs[1])
            assert space.validate(child) is child
            if probs == (0.0, 0.0):
                assert child == parent
            changed += child != parent
    assert changed > 30
    crossed = 0
    for first in parents:
        for second in parents:
            if not codec.compatible(first, second):
                continue
            child = codec.crossover(space, first, second, rng)
            assert space.validate(child) is child and child.depth == first.depth
            for name in ("num_heads", "mlp_ratio", "window_size"):
                for s, stage in enumerate(getattr(child, name)):
                    for j, gene in enumerate(stage):
                        assert gene in (getattr(first, name)[s][j], getattr(second, name)[s][j])
            crossed += first != second
    assert crossed > 0


def test_mutation_grows_and_shrinks_stages_with_random_blocks() -> None:
    space = SwinSpace.preset("swin_fashion_mnist")
    parent = space.smallest()
    rng = random.Random(0)
    depths = set()
    for _ in range(50):
        child = codec.mutate(space, parent, rng, mutation_prob=0.0, resample_prob=1.0)
        depths.add(child.depth)
        assert child.num_heads[1][:2] == parent.num_heads[1]  # kept blocks keep their genes
    assert {d[1] for d in depths} == {2, 3, 4}


def test_crossover_refuses_incompatible_parents() -> None:
    space = SwinSpace.preset("swin_digits")
    a, b = space.smallest(), space.largest()
    assert not codec.compatible(a, b)
    with pytest.raises(SpaceError, match="crossover needs equal per-stage depths"):
        codec.crossover(space, a, b, random.Random(0))
    with pytest.raises(SpaceError, match="is not a choice"):
        codec.mutate(
            space,
            dataclasses.replace(a, embed_dim=(17, 32)),
            random.Random(0),
            mutation_prob=0.2,
            resample_prob=0.4,
        )
