from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from omegaconf import DictConfig
from optuna.trial import TrialState

from search.budget import Budget
from search.costs import CostModel
from search.objective import subnet_from_params, suggest_subnet
from search.runner import run_search
from search.samplers import (
    SAMPLERS,
    AutoFormerChildGeneration,
    AutoFormerEvolutionSampler,
    TopKSelection,
    auto_population_size,
    build_sampler,
    resolve_sampler_name,
)
from supernet import SearchSpace, SubnetConfig, complexity
from supernet.common.errors import UserError


def always(_: SubnetConfig) -> bool:
    return True


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("n_objectives", [1, 2])
def test_every_sampler_builds(name: str, n_objectives: int, digits_space: SearchSpace) -> None:
    sampler = build_sampler(
        name,
        {},
        space=digits_space,
        is_feasible=always,
        n_objectives=n_objectives,
        seed=0,
        n_trials=60,
    )
    assert isinstance(sampler, optuna.samplers.BaseSampler)


def test_auto_and_errors(digits_space: SearchSpace) -> None:
    assert resolve_sampler_name("auto", 1) == "tpe"
    assert resolve_sampler_name("auto", 2) == "nsga2"
    kwargs = {"space": digits_space, "is_feasible": always, "n_objectives": 1, "seed": 0}
    with pytest.raises(UserError, match="unknown sampler 'cmaes'; choose one of auto, nsga2"):
        build_sampler("cmaes", {}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"unknown option\(s\) popsize for sampler nsga2; it takes"):
        build_sampler("nsga2", {"popsize": 3}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"search\.nsga2: .*population_size"):
        build_sampler("nsga2", {"population_size": 1}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="mutation_prob must be a probability"):
        build_sampler("autoformer_evolution", {"mutation_prob": 2}, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="2 <= parents <= population_size"):
        build_sampler("autoformer_evolution", {"parents": 60}, **kwargs)  # type: ignore[arg-type]


def test_mutation_follows_autoformer_probabilities(digits_space: SearchSpace) -> None:
    parent = digits_space.largest()
    frozen = AutoFormerChildGeneration(digits_space, always, mutation_prob=0, resample_prob=0)
    assert all(frozen.mutate(parent) == parent for _ in range(20))
    wild = AutoFormerChildGeneration(digits_space, always, mutation_prob=1, resample_prob=1, seed=0)
    children = [wild.mutate(parent) for _ in range(200)]
    assert all(digits_space.contains(c) for c in children)
    assert {c.depth for c in children} == set(digits_space.depth)
    assert {c.embed_dim for c in children} == set(digits_space.embed_dim)
    # Per-layer genes only: with resample_prob=0 depth and width never change.
    layers_only = AutoFormerChildGeneration(
        digits_space, always, mutation_prob=1, resample_prob=0, seed=0
    )
    kids = [layers_only.mutate(parent) for _ in range(100)]
    assert {(k.depth, k.embed_dim) for k in kids} == {(parent.depth, parent.embed_dim)}
    assert len({k.num_heads for k in kids}) > 1


def test_crossover_takes_each_gene_from_a_parent(digits_space: SearchSpace) -> None:
    a = SubnetConfig(16, 2, (1, 2), (1.0, 2.0))
    b = SubnetConfig(32, 2, (2, 1), (2.0, 1.0))
    c = SubnetConfig(32, 1, (1,), (1.0,))  # another depth: never mated with a or b
    gen = AutoFormerChildGeneration(digits_space, always, seed=0)
    for _ in range(100):
        child = gen.crossover([a, b, c])
        if child.depth == 1:
            assert child == c
            continue
        assert child.embed_dim in (16, 32)
        for i in range(2):
            assert child.num_heads[i] in (a.num_heads[i], b.num_heads[i])
            assert child.mlp_ratio[i] in (a.mlp_ratio[i], b.mlp_ratio[i])


def test_children_are_feasible_and_new(digits_space: SearchSpace) -> None:
    limit = complexity.params(digits_space, SubnetConfig(16, 2, (2, 2), (2.0, 2.0)))

    def small(subnet: SubnetConfig) -> bool:
        return complexity.params(digits_space, subnet) <= limit

    gen = AutoFormerChildGeneration(digits_space, small, seed=0)
    parents = [SubnetConfig(16, 1, (1,), (1.0,)), SubnetConfig(16, 2, (1, 1), (1.0, 1.0))]
    seen = set(parents)
    for _ in range(10):
        child = gen.child(parents, seen)
        assert small(child) and child not in seen
        seen.add(child)


def test_top_k_ranks_feasible_by_value_then_infeasible_by_violation() -> None:
    study = optuna.create_study(direction="maximize")
    for value, constraint in [(0.5, -1), (0.9, -1), (0.0, 3.0), (0.0, 0.5), (0.7, 0.0)]:
        trial = study.ask()
        trial.set_constraint("flops_max", constraint)
        study.tell(trial, value)
    picked = TopKSelection(4)(study, study.trials)
    assert [t.number for t in picked] == [1, 4, 0, 3]


def test_evolution_generations_stay_within_budget(digits_space: SearchSpace) -> None:
    """Past the random first generation, every child meets the budget and is new (AutoFormer
    rejects the others before evaluating them); parents are the top trials so far."""
    costs = CostModel(digits_space)
    limit = complexity.flops(digits_space, SubnetConfig(32, 1, (2,), (2.0,)))
    budget = Budget.from_config({"flops": limit})
    sampler = AutoFormerEvolutionSampler(
        digits_space,
        lambda s: budget.is_feasible(costs(s)),
        population_size=8,
        parents=3,
        seed=0,
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = random.Random(0)
    score = {}

    def objective(trial: optuna.trial.Trial) -> float:
        subnet = suggest_subnet(trial, digits_space)
        for name, value in budget.violations(costs(subnet)).items():
            trial.set_constraint(name, value)
        return score.setdefault(subnet, rng.random())

    study.optimize(objective, n_trials=32)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    key = sampler._get_generation_key()
    assert max(t.system_attrs[key] for t in trials) >= 2
    later = [t for t in trials if t.system_attrs[key] >= 1]
    assert later
    for t in later:
        assert budget.is_feasible(costs(subnet_from_params(t.params)))


def test_nsga2_population_is_sized_to_the_run() -> None:
    assert [auto_population_size(n) for n in (10, 20, 60, 100, 250, 1000)] == [
        4,
        4,
        12,
        20,
        50,
        50,
    ]


def test_a_60_trial_nsga2_run_is_not_a_random_search(
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    half_flops: int,
    tmp_path: Path,
) -> None:
    """The README's sampler sweep (search.n_trials=60, one seed): NSGA-II's first generation is
    random with the seed, so its first 12 trials (population auto: 60 // 5) are the random run's;
    after it, NSGA-II proposes its own subnets."""
    params = {}
    for sampler in ("nsga2", "random"):
        cfg = search_config(
            f"supernet={random_checkpoint}",
            f"budget.flops={half_flops}",
            "search.n_trials=60",
            f"search.sampler={sampler}",
            "search.val_size=16",
            "seed=0",
        )
        result = run_search(cfg, tmp_path / sampler)
        trials = result.trials.sort_values("number")
        params[sampler] = [
            tuple(row)
            for row in trials[["embed_dim", "depth", "num_heads", "mlp_ratio"]].astype(str).values
        ]
    nsga2, rand = params["nsga2"], params["random"]
    assert len(nsga2) == len(rand) == 60
    population = auto_population_size(60)
    assert nsga2[:population] == rand[:population]  # the first generation: random draws
    later = sum(a != b for a, b in zip(nsga2[population:], rand[population:], strict=True))
    print(f"after the first generation, {later} of {60 - population} trials differ")
    assert later >= (60 - population) * 3 // 4
