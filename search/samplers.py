"""Config → Optuna sampler: ``nsga2``, ``tpe``, ``random``, ``gp`` and ``autoformer_evolution``.

Every sampler sees the budget through the trials' constraints (Optuna 5 reads them from the
trials; ``constraints_func`` is deprecated; see :func:`search.optuna_adapter.set_constraints`), so
NSGA-II, TPE and GP rank infeasible subnets by how far they miss the budget.

``autoformer_evolution`` reproduces the evolutionary search of AutoFormer (Chen et al., ICCV 2021,
``evolution.py``) on Optuna's genetic-algorithm machinery: an :class:`optuna.samplers.NSGAIISampler`
whose generations hold ``population_size`` (50) trials, whose parents are the top ``parents`` (10)
trials so far (:class:`TopKSelection`: for one objective, the 10 most accurate feasible subnets)
and whose children come from :class:`AutoFormerChildGeneration`: with
probability ``mutation_share`` (0.5: the paper's 25 of 50) a mutation of a random parent — depth
and embedding width resampled with probability ``resample_prob`` (0.4), each layer's heads and MLP
ratio with ``mutation_prob`` (0.2), new layers drawn at random — otherwise a crossover of two
random parents of the same depth, gene by gene. Like the paper, a child that breaks the budget or
repeats an earlier subnet is rejected and drawn again (up to ``max_tries`` times) before any
evaluation. The differences are listed in the README.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import (
    BaseSampler,
    GPSampler,
    NSGAIISampler,
    RandomSampler,
    TPESampler,
)
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from supernet import Space, Subnet, family_of
from supernet.common.errors import UserError

from .objective import subnet_from_params, subnet_params

__all__ = [
    "SAMPLERS",
    "AutoFormerChildGeneration",
    "AutoFormerEvolutionSampler",
    "TopKSelection",
    "auto_population_size",
    "build_sampler",
    "resolve_sampler_name",
]

SAMPLERS = ("auto", "nsga2", "tpe", "random", "gp", "autoformer_evolution")

#: Option names each sampler accepts (``search.<sampler>.<option>`` in the config).
OPTIONS: dict[str, tuple[str, ...]] = {
    "nsga2": ("population_size", "crossover_prob", "swapping_prob", "mutation_prob"),
    "tpe": ("n_startup_trials", "multivariate"),
    "random": (),
    "gp": ("n_startup_trials",),
    "autoformer_evolution": (
        "population_size",
        "parents",
        "mutation_share",
        "mutation_prob",
        "resample_prob",
        "max_tries",
    ),
}


def resolve_sampler_name(name: str, n_objectives: int) -> str:
    """``auto`` is TPE for one objective and NSGA-II for two; unknown names fail clearly."""
    if name not in SAMPLERS:
        raise UserError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if name == "auto":
        return "nsga2" if n_objectives > 1 else "tpe"
    return name


def _options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS[name]))
    if unknown:
        raise UserError(
            f"unknown option(s) {', '.join(unknown)} for sampler {name}; "
            f"it takes {', '.join(OPTIONS[name]) or 'none'}"
        )
    return {k: v for k, v in options.items() if v is not None}


def _probability(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise UserError(f"{name} must be a probability in [0, 1], got {value}")
    return float(value)


def _violation(trial: FrozenTrial) -> float:
    return sum(max(v, 0.0) for v in trial.constraints.values())


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


class TopKSelection:
    """AutoFormer's parent selection as an NSGA-II elite-selection strategy: the ``k`` best
    trials of the population. Feasible trials first — by objective for one objective, by
    non-dominated rank then accuracy for several — then infeasible ones by smallest violation."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, study: Study, population: list[FrozenTrial]) -> list[FrozenTrial]:
        signs = [-1.0 if d == StudyDirection.MAXIMIZE else 1.0 for d in study.directions]
        done = [t for t in population if t.values is not None]
        feasible = [t for t in done if _violation(t) <= 0]
        infeasible = sorted((t for t in done if _violation(t) > 0), key=_violation)
        losses = {t.number: [s * v for s, v in zip(signs, t.values, strict=True)] for t in feasible}
        rank = {
            t.number: sum(_dominates(losses[o.number], losses[t.number]) for o in feasible)
            for t in feasible
        }
        feasible.sort(key=lambda t: (rank[t.number], losses[t.number], t.number))
        return (feasible + infeasible)[: self.k]


class AutoFormerChildGeneration:
    """AutoFormer's ``get_mutation`` / ``get_crossover`` as an NSGA-II child-generation strategy.

    Returns a complete child (every active layer), restricted to the names Optuna's relative
    search space holds; anything left out is drawn at random by the sampler, as AutoFormer draws
    the layers a mutation adds.
    """

    def __init__(
        self,
        space: Space,
        is_feasible: Callable[[Subnet], bool],
        *,
        mutation_share: float = 0.5,
        mutation_prob: float = 0.2,
        resample_prob: float = 0.4,
        max_tries: int = 100,
        seed: int | None = None,
    ) -> None:
        self.space = space
        self.family = family_of(space)
        self.is_feasible = is_feasible
        self.mutation_share = _probability("mutation_share", mutation_share)
        self.mutation_prob = _probability("mutation_prob", mutation_prob)
        self.resample_prob = _probability("resample_prob", resample_prob)
        if int(max_tries) < 1:
            raise UserError(f"max_tries must be at least 1, got {max_tries}")
        self.max_tries = int(max_tries)
        self.rng = random.Random(seed)

    # -- AutoFormer's operators (the family's) ---------------------------------------------------
    def mutate(self, parent: Subnet) -> Subnet:
        return self.family.mutate(
            self.space,
            parent,
            self.rng,
            mutation_prob=self.mutation_prob,
            resample_prob=self.resample_prob,
        )

    def crossover(self, parents: list[Subnet]) -> Subnet:
        """Gene-wise uniform crossover of two random parents that can be crossed (for the ViT
        family: of the same depth).

        As in AutoFormer the two are drawn with replacement (AutoFormer redraws pairs until the
        depths agree); a child equal to an earlier subnet is rejected by :meth:`child`.
        """
        first = self.rng.choice(parents)
        second = self.rng.choice([p for p in parents if self.family.compatible(first, p)])
        return self.family.crossover(self.space, first, second, self.rng)

    def child(self, parents: list[Subnet], seen: set[Subnet]) -> Subnet:
        """A feasible subnet not seen before, if one turns up within ``max_tries`` draws; else a
        feasible repeat (the objective does not evaluate a repeat again); else the last draw."""
        candidate, repeat = parents[0], None
        for _ in range(self.max_tries):
            if self.rng.random() < self.mutation_share:
                candidate = self.mutate(self.rng.choice(parents))
            else:
                candidate = self.crossover(parents)
            if self.is_feasible(candidate):
                if candidate not in seen:
                    return candidate
                repeat = repeat or candidate
        return repeat or candidate

    # -- Optuna's child-generation protocol ------------------------------------------------------
    def __call__(
        self,
        study: Study,
        search_space: dict[str, BaseDistribution],
        parent_population: list[FrozenTrial],
    ) -> dict[str, Any]:
        space = self.space
        parents = [
            s for t in parent_population if (s := subnet_from_params(t.params, space)) is not None
        ]
        if not parents:
            return {}
        seen = {
            s
            for t in study.get_trials(deepcopy=False)
            if (s := subnet_from_params(t.params, space)) is not None
        }
        params = subnet_params(self.child(parents, seen))
        return {k: v for k, v in params.items() if k in search_space}


class AutoFormerEvolutionSampler(NSGAIISampler):
    """NSGA-II machinery with AutoFormer's parents (top-k) and operators.

    The relative search space is the union of every parameter seen so far (not NSGA-II's
    intersection), so a child inherits its parents' deeper layers instead of drawing them anew.
    """

    def __init__(
        self,
        space: Space,
        is_feasible: Callable[[Subnet], bool],
        *,
        population_size: int = 50,
        parents: int = 10,
        mutation_share: float = 0.5,
        mutation_prob: float = 0.2,
        resample_prob: float = 0.4,
        max_tries: int = 100,
        seed: int | None = None,
    ) -> None:
        if int(parents) < 2 or int(parents) > int(population_size):
            raise UserError(
                f"autoformer_evolution needs 2 <= parents <= population_size, got parents="
                f"{parents}, population_size={population_size}"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(
                population_size=int(population_size),
                seed=seed,
                elite_population_selection_strategy=TopKSelection(int(parents)),
                child_generation_strategy=AutoFormerChildGeneration(
                    space,
                    is_feasible,
                    mutation_share=mutation_share,
                    mutation_prob=mutation_prob,
                    resample_prob=resample_prob,
                    max_tries=max_tries,
                    seed=seed,
                ),
            )

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space: dict[str, BaseDistribution] = {}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            for name, dist in t.distributions.items():
                if not dist.single():
                    space.setdefault(name, dist)
        return space


def auto_population_size(n_trials: int) -> int:
    """NSGA-II's population for a run of ``n_trials`` trials: ``min(50, max(4, n_trials // 5))``,
    so that a run has about five generations or more. Its first generation is drawn at random
    with the study's seed, the same draws as ``sampler=random``: with Optuna's default of 50, a
    60-trial NSGA-II run was a random search in 50 of its trials."""
    return min(50, max(4, n_trials // 5))


def _population_size(value: Any, n_trials: int | None) -> int:
    if value is None or value == "auto":
        if n_trials is None:
            raise UserError(
                "search.nsga2.population_size=auto needs the run's number of trials; pass "
                "search.nsga2.population_size=<number>"
            )
        return auto_population_size(n_trials)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(
            f"search.nsga2.population_size must be auto or an integer >= 2, got {value!r}; "
            "pass search.nsga2.population_size=auto"
        )
    return value


def build_sampler(
    name: str,
    options: Mapping[str, Any] | None,
    *,
    space: Space,
    is_feasible: Callable[[Subnet], bool],
    n_objectives: int,
    seed: int | None,
    n_workers: int = 1,
    n_trials: int | None = None,
) -> BaseSampler:
    """The Optuna sampler ``name`` (see :data:`SAMPLERS`) with its ``search.<name>`` options.

    ``n_trials``: the run's number of trials, which sizes NSGA-II's population when its
    ``population_size`` is ``auto`` (:func:`auto_population_size`)."""
    name = resolve_sampler_name(name, n_objectives)
    opts = _options(name, options)
    if name == "nsga2":
        opts["population_size"] = _population_size(opts.get("population_size"), n_trials)
    try:
        return _build(name, opts, space, is_feasible, seed, n_workers)
    except (TypeError, ValueError) as exc:  # Optuna's own checks of the option values
        raise UserError(
            f"search.{name}: {str(exc).rstrip('.')}; pass a value in range (python -m search "
            f"--help lists search.{name}.* with their defaults)"
        ) from None


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"`{key}` must be an integer >= 0, got {value!r}")
    return value


def _build(
    name: str,
    opts: dict[str, Any],
    space: Space,
    is_feasible: Callable[[Subnet], bool],
    seed: int | None,
    n_workers: int,
) -> BaseSampler:
    with warnings.catch_warnings():
        # ``group`` (TPE) and ``deterministic_objective`` (GP) are marked experimental.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "random":
            return RandomSampler(seed=seed)
        if name == "tpe":
            return TPESampler(
                seed=seed,
                n_startup_trials=_count("n_startup_trials", opts.get("n_startup_trials", 10)),
                multivariate=bool(opts.get("multivariate", True)),
                group=bool(opts.get("multivariate", True)),  # conditional (define-by-run) layers
                constant_liar=n_workers > 1,
            )
        if name == "gp":
            return GPSampler(
                seed=seed,
                n_startup_trials=_count("n_startup_trials", opts.get("n_startup_trials", 10)),
                deterministic_objective=True,  # inherited-weight accuracy has no noise
                warn_independent_sampling=False,
            )
        if name == "nsga2":
            return NSGAIISampler(
                seed=seed,
                population_size=int(opts.get("population_size", 50)),
                crossover_prob=_probability("crossover_prob", opts.get("crossover_prob", 0.9)),
                swapping_prob=_probability("swapping_prob", opts.get("swapping_prob", 0.5)),
                mutation_prob=(
                    _probability("mutation_prob", opts["mutation_prob"])
                    if "mutation_prob" in opts
                    else None
                ),
            )
        return AutoFormerEvolutionSampler(space, is_feasible, seed=seed, **opts)
