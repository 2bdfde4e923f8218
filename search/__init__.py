"""Optuna search over the subnets of a weight-sharing supernet, under FLOP/params/latency budgets.

Commands: ``python -m search`` (a Hydra app), ``python -m search.report``,
``python -m search.export``, ``python -m search.rank``, ``python -m search.latency``.

Public API::

    from search import run_search, read_trials, export_subnet, write_report

    # A Hydra config (conf/search.yaml), or a plain dict with the same keys:
    cfg = {"supernet": "runs/demo/supernet.pt", "budget": {"flops": "2M"},
           "search": {"n_trials": 50}}
    result = run_search(cfg, "runs/search")        # result.trials: the trials DataFrame
    frame = read_trials("runs/search")             # the same table, read back
    export_subnet("runs/search", "best", "exported/best")
    write_report(["multirun/2026-01-01/12-00-00"])

The names load on first use: ``import search`` imports neither torch nor Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from supernet.common.startup import quiet_startup_interrupts

quiet_startup_interrupts()  # in a command's process only: Ctrl-C or SIGTERM while it imports

if TYPE_CHECKING:
    from .budget import Budget, BudgetError
    from .costs import CostModel
    from .export import ExportResult, export_subnet
    from .report import Report, write_report
    from .results import read_trials
    from .runner import SearchResult, run_search
    from .samplers import AutoFormerEvolutionSampler, build_sampler

# name -> the module that defines it. The command modules load only when used, so that
# `python -m search.export` (or .report) does not find itself imported already by the package.
_LAZY = {
    "AutoFormerEvolutionSampler": "samplers",
    "Budget": "budget",
    "BudgetError": "budget",
    "CostModel": "costs",
    "ExportResult": "export",
    "Report": "report",
    "SearchResult": "runner",
    "build_sampler": "samplers",
    "export_subnet": "export",
    "read_trials": "results",
    "run_search": "runner",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AutoFormerEvolutionSampler",
    "Budget",
    "BudgetError",
    "CostModel",
    "ExportResult",
    "Report",
    "SearchResult",
    "build_sampler",
    "export_subnet",
    "read_trials",
    "run_search",
    "write_report",
]
