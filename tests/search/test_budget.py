from __future__ import annotations

import math
from pathlib import Path

import pytest

from search.budget import Budget, BudgetError, parse_amount
from search.costs import CostModel, resolve_latency_profile
from supernet import SearchSpace, complexity
from supernet.common.errors import UserError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (2e6, 2e6),
        (1500, 1500.0),
        ("2M", 2e6),
        ("1.5G", 1.5e9),
        ("800k", 8e5),
        ("3e5", 3e5),
        (" 4 M ", 4e6),
        ("null", None),
    ],
)
def test_parse_amount(value: object, expected: float | None) -> None:
    assert parse_amount("budget.flops", value) == expected


@pytest.mark.parametrize("value", ["2 MB", "abc", -1, 0, True, "-2M", [1]])
def test_parse_amount_rejects(value: object) -> None:
    with pytest.raises(BudgetError, match=r"budget\.flops must be"):
        parse_amount("budget.flops", value)


def test_violations_are_relative_and_signed() -> None:
    budget = Budget.from_config({"flops": "2M", "min_params": 1000})
    assert budget.metrics == ("params", "flops")
    v = budget.violations({"flops": 3e6, "params": 500.0, "macs": 1.5e6, "latency_ms": math.nan})
    assert v == pytest.approx({"flops_max": 0.5, "params_min": 0.5})
    inside = budget.violations({"flops": 1e6, "params": 2000.0})
    assert inside == pytest.approx({"flops_max": -0.5, "params_min": -1.0})
    assert budget.is_feasible({"flops": 2e6, "params": 1000.0})  # bounds are inclusive
    assert not budget.is_feasible({"flops": 2e6 + 1, "params": 1000.0})
    assert not Budget.from_config({}) and Budget.from_config(None).violations({}) == {}


def test_config_round_trip_and_description() -> None:
    budget = Budget.from_config({"params": "5.7M", "min_params": "5M", "flops": None})
    assert Budget.from_config(budget.to_config()) == budget
    assert budget.describe() == "5M params <= params <= 5.7M params"


def test_unknown_key_and_crossed_bounds() -> None:
    with pytest.raises(
        BudgetError, match=r"unknown budget key\(s\) flop; the keys are params, macs, flops"
    ):
        Budget.from_config({"flop": 1})
    with pytest.raises(BudgetError) as info:
        Budget.from_config({"flops": "2M", "min_flops": "3M"})
    assert str(info.value) == (
        "budget.min_flops (3M FLOPs) is above budget.flops (2M FLOPs), so no subnet can meet the "
        "budget; make each lower bound at most its upper bound"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # Hydra reads budget.flops=inf as a float: not 'must be positive'
        (
            {"flops": math.inf},
            "budget.flops must be a finite number, got inf; pass budget.flops=null for no bound "
            "or budget.flops=2M (say)",
        ),
        # a latency bound is in milliseconds: its example is not 2M
        (
            {"latency_ms": -1},
            "budget.latency_ms must be positive, got -1; pass budget.latency_ms=5 (say)",
        ),
        (
            {"min_latency_ms": "fast"},
            "budget.min_latency_ms must be a number of milliseconds like 5 or 0.8, got 'fast'; "
            "pass budget.min_latency_ms=5 (say)",
        ),
        (
            {"params": 0},
            "budget.params must be positive, got 0; pass budget.params=2M (say)",
        ),
        # a signed amount is a number (it said 'must be a number like 2e6 or 2M')
        ({"flops": "-2M"}, "budget.flops must be positive, got '-2M'; pass budget.flops=2M (say)"),
        # strings, as search.export's own options arrive
        (
            {"flops": "inf"},
            "budget.flops must be a finite number, got 'inf'; pass budget.flops=null for no "
            "bound or budget.flops=2M (say)",
        ),
        (
            {"min_macs": "NaN"},
            "budget.min_macs must be a finite number, got 'NaN'; pass budget.min_macs=null for no "
            "bound or budget.min_macs=2M (say)",
        ),
    ],
)
def test_bad_amounts_say_what_to_pass(config: dict, message: str) -> None:
    with pytest.raises(BudgetError) as info:
        Budget.from_config(config)
    assert str(info.value) == message


def test_unreachable_budget_names_the_space_range(digits_space: SearchSpace) -> None:
    costs = CostModel(digits_space)
    small = complexity.flops(digits_space, digits_space.smallest())
    large = complexity.params(digits_space, digits_space.largest())
    Budget.from_config({"flops": small}).check(digits_space, costs)  # exactly the smallest: ok
    with pytest.raises(BudgetError) as info:
        Budget.from_config({"flops": small - 1}).check(digits_space, costs)
    message = str(info.value)
    assert "is below the smallest subnet" in message
    assert str(digits_space.smallest()) in message and str(digits_space.largest()) in message
    with pytest.raises(BudgetError, match=r"budget\.min_params = .* is above the largest subnet"):
        Budget.from_config({"min_params": large + 1}).check(digits_space, costs)


def test_latency_needs_a_profile(
    digits_space: SearchSpace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no latency_profiles/ here
    assert resolve_latency_profile(None, digits_space) is None
    with pytest.raises(UserError) as info:
        resolve_latency_profile(None, digits_space, needed_by=["budget.latency_ms"])
    message = str(info.value)
    assert message.startswith("budget.latency_ms needs predicted latency; no latency profile")
    assert "python -m search.latency calibrate" in message
    with pytest.raises(UserError, match=r"python -m search\.latency calibrate"):
        resolve_latency_profile(tmp_path / "none.yaml", digits_space)
    assert math.isnan(CostModel(digits_space)(digits_space.smallest())["latency_ms"])


def test_latency_predictor_is_used(digits_space: SearchSpace) -> None:
    costs = CostModel(digits_space, latency=lambda space, subnet: 0.5 * subnet.depth)
    assert costs(digits_space.largest())["latency_ms"] == 1.0
    budget = Budget.from_config({"latency_ms": 0.75})
    assert budget.is_feasible(costs(digits_space.smallest()))
    assert not budget.is_feasible(costs(digits_space.largest()))


def test_bounds_that_clash_only_with_each_other(digits_space: SearchSpace) -> None:
    """Each bound alone is within the space's range (check passes), together none meets them:
    the search warns before it starts (it ran and reported no feasible subnet at the end)."""
    costs = CostModel(digits_space)
    small, large = costs(digits_space.smallest()), costs(digits_space.largest())
    # nearly the most params, and nearly the fewest FLOPs
    clash = Budget.from_config(
        {"min_params": 0.95 * large["params"], "flops": 1.05 * small["flops"]}
    )
    clash.check(digits_space, costs)
    assert clash.clashes() and clash.find_feasible(digits_space, costs, draws=500) is None
    fine = Budget.from_config({"min_params": small["params"], "flops": large["flops"]})
    found = fine.find_feasible(digits_space, costs, draws=500)
    assert found is not None and fine.is_feasible(costs(found))
    assert not Budget.from_config({"flops": "1M"}).clashes()
    assert Budget.from_config({"min_flops": "1M", "flops": "2M"}).clashes()
