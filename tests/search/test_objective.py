from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.budget import Budget
from search.costs import CostModel
from search.objective import (
    INFEASIBLE_VALUE,
    Objective,
    load_val_data,
    subnet_from_params,
    subnet_params,
    suggest_subnet,
)
from search.optuna_adapter import constraints_of
from supernet import SearchSpace, complexity
from supernet.checkpoint import load_supernet


def test_define_by_run_suggests_only_active_layers(digits_space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    depths = set()
    for _ in range(30):
        trial = study.ask()
        subnet = suggest_subnet(trial, digits_space)
        digits_space.validate(subnet)
        depths.add(subnet.depth)
        expected = ["depth", "embed_dim"] + [
            f"{name}_{i}" for i in range(subnet.depth) for name in ("num_heads", "mlp_ratio")
        ]
        assert list(trial.params) == expected  # depth and width first, then per active layer
        study.tell(trial, 0.0)
    assert depths == set(digits_space.depth)


def test_params_round_trip(digits_space: SearchSpace) -> None:
    rng = random.Random(0)
    for subnet in [digits_space.smallest(), digits_space.largest()] + [
        digits_space.sample(rng) for _ in range(20)
    ]:
        assert subnet_from_params(subnet_params(subnet)) == subnet
        assert (
            suggest_subnet(optuna.trial.FixedTrial(subnet_params(subnet)), digits_space) == subnet
        )
    assert subnet_from_params({"depth": 2, "embed_dim": 16, "num_heads_0": 1}) is None


class CountingObjective(Objective):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.evaluated: list[object] = []

    def evaluate(self, subnet):  # type: ignore[no-untyped-def]
        self.evaluated.append(subnet)
        return super().evaluate(subnet)


@pytest.fixture
def objective_parts(trained_checkpoint: Path):  # type: ignore[no-untyped-def]
    net, payload = load_supernet(trained_checkpoint)
    data = load_val_data(payload["data"], net.space, val_size=64)
    return net, data


def test_infeasible_trials_are_not_evaluated(objective_parts) -> None:  # type: ignore[no-untyped-def]
    net, data = objective_parts
    space = net.space
    small, large = (complexity.flops(space, s) for s in (space.smallest(), space.largest()))
    budget = Budget.from_config({"flops": (small + large) / 2, "min_params": 1})
    objective = CountingObjective(net, data, budget, CostModel(space), batch_size=32)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(objective, n_trials=40)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    feasible = [t for t in trials if t.user_attrs["feasible"]]
    infeasible = [t for t in trials if not t.user_attrs["feasible"]]
    assert feasible and infeasible
    for t in trials:  # every trial carries the same constraints (GP requires it)
        assert set(constraints_of(t)) == {"flops_max", "params_min"}
        assert list(t.constraints) == ["0", "1"]  # as Optuna reads them (the dashboard's form)
    for t in feasible:
        subnet = subnet_from_params(t.params)
        assert complexity.flops(space, subnet) <= budget.bound("flops").high  # type: ignore[union-attr]
        assert all(v <= 0 for v in t.constraints.values())
        assert 0.0 <= t.user_attrs["val_acc"] <= 1.0 and t.value == t.user_attrs["val_acc"]
    for t in infeasible:
        assert t.user_attrs["val_acc"] is None and t.user_attrs["eval_s"] == 0.0
        assert t.value == INFEASIBLE_VALUE and max(t.constraints.values()) > 0
    evaluated = set(objective.evaluated)
    assert not evaluated & {subnet_from_params(t.params) for t in infeasible}
    # A subnet proposed twice is evaluated once; the repeat points at the first trial.
    assert len(objective.evaluated) == len(evaluated)
    repeats = [t for t in feasible if "duplicate_of" in t.user_attrs]
    assert len(feasible) == len(evaluated) + len(repeats)
    for t in repeats:
        first = study.trials[t.user_attrs["duplicate_of"]]
        assert first.params == t.params and first.value == t.value


def test_multi_objective_values(objective_parts) -> None:  # type: ignore[no-untyped-def]
    net, data = objective_parts
    objective = Objective(net, data, Budget(), CostModel(net.space), ("val_acc", "params"))
    trial = optuna.trial.FixedTrial(subnet_params(net.space.largest()))
    acc, params = objective(trial)
    assert params == complexity.params(net.space, net.space.largest()) and 0 <= acc <= 1
