"""The options of ``python -m search``: its Hydra structured config, each default defined once.

``conf/search.yaml`` lists :class:`SearchConfig` (registered as ``search_schema``) first in its
defaults, so that Hydra checks every key and value against it; the YAML groups ``search`` and
``budget`` hold presets that only say what they change. ``python -m search --help`` lists every
option with its default and this help text; :class:`search.settings.SearchSettings` is what the
code receives, checked and typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supernet.common.config import option, register

__all__ = [
    "BudgetOptions",
    "EvolutionOptions",
    "GPOptions",
    "NSGA2Options",
    "SearchConfig",
    "SearchOptions",
    "TPEOptions",
]


@dataclass
class TPEOptions:
    n_startup_trials: int = option(10, "random trials before TPE models the results")
    multivariate: bool = option(True, "multivariate TPE with group=true (conditional layers)")


@dataclass
class GPOptions:
    n_startup_trials: int = option(10, "random trials before the Gaussian process")


@dataclass
class NSGA2Options:
    population_size: Any = option(
        "auto",
        "trials per generation; auto: min(50, max(4, n_trials // 5)), five generations or more "
        "(the first generation is random)",
    )
    crossover_prob: float = option(0.9, "probability of a crossover for a child")
    swapping_prob: float = option(0.5, "probability of taking each gene from the other parent")
    mutation_prob: float | None = option(None, "per gene; null: 1 / number of parameters")


@dataclass
class EvolutionOptions:
    population_size: int = option(50, "AutoFormer: population 50 per generation")
    parents: int = option(10, "the top subnets so far that are the parents")
    mutation_share: float = option(0.5, "children by mutation (the rest by crossover)")
    mutation_prob: float = option(0.2, "per layer: resample heads / MLP ratio (AutoFormer m_prob)")
    resample_prob: float = option(0.4, "resample depth / width (AutoFormer s_prob)")
    max_tries: int = option(100, "draws to find a feasible, unseen child before evaluating anyway")


@dataclass
class SearchOptions:
    n_trials: int = option(
        100, "trials to run now; a resumed study gets this many more. 0: create it"
    )
    timeout: float | None = option(None, "stop starting trials after this many seconds")
    objectives: Any = option(
        ["val_acc"], "[val_acc] or [val_acc, <cost>], cost: flops | macs | params | latency_ms"
    )
    sampler: str = option(
        "auto",
        "auto (tpe, or nsga2 for two objectives) | nsga2 | tpe | random | gp | "
        "autoformer_evolution",
    )
    n_workers: int = option(1, "worker processes on this machine, all on one study")
    worker_restarts: int = option(3, "restarts per run of a worker killed by a signal (OOM)")
    storage: str | None = option(
        None, "Optuna storage URL; null: sqlite:///<run dir>/study.db (PostgreSQL for many)"
    )
    study_name: str | None = option(
        None, "null: <space>/<objectives>/<budget>/<sampler>/seed<seed>; same name = resume"
    )
    val_size: int | None = option(None, "evaluate on the first N validation images; null: all")
    batch_size: int = option(1000, "evaluation batch")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:<n> | mps")
    threads: int | None = option(None, "torch threads per worker; null: CPU cores / n_workers")
    latency_profile: str | None = option(
        None, "a profile file or directory; null: latency_profiles/ (where calibrate files them)"
    )
    latency_device: str = option("cpu", "the device latency is predicted for (the target)")
    latency_batch_size: int = option(1, "... at this batch size")
    latency_threads: int | None = option(None, "... with this many CPU threads; null: torch's")
    measure_latency: bool = option(False, "also measure each evaluated subnet's real latency")
    heartbeat_interval: int | None = option(60, "seconds between a running trial's heartbeats")
    grace_period: int | None = option(120, "a trial silent this long is failed and retried")
    max_retry: int | None = option(3, "retries of one trial whose worker died")
    seed_trials: bool = option(True, "enqueue the smallest and largest subnets first")
    progress: Any = option(
        "auto", "auto (a bar on a terminal; elsewhere a log line a minute) | true (the bar) | false"
    )
    verbose: bool = option(False, "Optuna's per-trial log lines")
    plots_png: bool = option(True, "also write PNGs when kaleido + Chromium are available")
    tpe: TPEOptions = option(TPEOptions(), "")
    gp: GPOptions = option(GPOptions(), "")
    nsga2: NSGA2Options = option(NSGA2Options(), "")
    autoformer_evolution: EvolutionOptions = option(EvolutionOptions(), "")


@dataclass
class BudgetOptions:
    """Bounds per subnet and image: null (no bound), a number (2e6) or SI-suffixed (2M, 1.5G).
    A subnet outside a bound is recorded as infeasible and never evaluated."""

    flops: Any = option(None, "upper bound on FLOPs (= 2 x MACs, what FlopCounterMode counts)")
    params: Any = option(None, "upper bound on parameters")
    macs: Any = option(None, "upper bound on multiply-accumulates")
    latency_ms: Any = option(None, "upper bound on predicted latency (needs a latency profile)")
    min_flops: Any = option(None, "lower bound on FLOPs (AutoFormer's min-param-limits)")
    min_params: Any = option(None, "lower bound on parameters")
    min_macs: Any = option(None, "lower bound on MACs")
    min_latency_ms: Any = option(None, "lower bound on predicted latency")


@dataclass
class SearchConfig:
    supernet: str | None = option(
        None, "path to supernet.pt, or the training run dir holding it (required)"
    )
    seed: int | None = option(
        0, "sampler seed (each worker derives its own); null: not reproducible"
    )
    debug: bool = option(False, "show the traceback of a user error instead of one line")
    search: SearchOptions = option(SearchOptions(), "")
    budget: BudgetOptions = option(BudgetOptions(), "")


register("search_schema", SearchConfig)  # what conf/search.yaml's defaults list first
