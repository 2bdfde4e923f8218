"""Optuna search over the subnets of a weight-sharing supernet, under FLOP/params/latency budgets.

Commands: ``python -m search`` (a Hydra app), ``python -m search.report``,
``python -m search.export``.

Public API::

    from search import run_search, read_trials, export_subnet, write_report

    # A Hydra config (conf/search.yaml), or a plain dict with the same keys:
    cfg = {"supernet": "runs/demo/supernet.pt", "budget": {"flops": "2M"},
           "search": {"n_trials": 50}}
    result = run_search(cfg, "runs/search")        # result.trials: the trials DataFrame
    frame = read_trials("runs/search")             # the same table, read back
    export_subnet("runs/search", "best", "exported/best")
    write_report(["multirun/2026-01-01/12-00-00"])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .budget import Bound, Budget, BudgetError
from .costs import METRICS, CostModel, resolve_latency_profile
from .objective import (
    Objective,
    ValData,
    load_val_data,
    subnet_from_params,
    subnet_params,
    suggest_subnet,
)
from .plots import history_figure, pareto_figure, report_figure, save_figure
from .results import CONTRACT_COLUMNS, pareto_mask, read_trials, summary_text, trials_frame
from .runner import SearchResult, run_search
from .samplers import (
    SAMPLERS,
    AutoFormerChildGeneration,
    AutoFormerEvolutionSampler,
    TopKSelection,
    build_sampler,
)
from .settings import SearchSettings
from .storage import default_storage_url, open_storage, open_study

if TYPE_CHECKING:
    from .export import ExportResult, export_subnet, pick_trial
    from .report import Report, write_report

# The command modules load on first use, so that `python -m search.export` (or .report) does not
# find itself imported already by the package (runpy warns about that).
_LAZY = {
    "ExportResult": "export",
    "export_subnet": "export",
    "pick_trial": "export",
    "Report": "report",
    "write_report": "report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONTRACT_COLUMNS",
    "METRICS",
    "SAMPLERS",
    "AutoFormerChildGeneration",
    "AutoFormerEvolutionSampler",
    "Bound",
    "Budget",
    "BudgetError",
    "CostModel",
    "ExportResult",
    "Objective",
    "Report",
    "SearchResult",
    "SearchSettings",
    "TopKSelection",
    "ValData",
    "build_sampler",
    "default_storage_url",
    "export_subnet",
    "history_figure",
    "load_val_data",
    "open_storage",
    "open_study",
    "pareto_figure",
    "pareto_mask",
    "pick_trial",
    "read_trials",
    "report_figure",
    "resolve_latency_profile",
    "run_search",
    "save_figure",
    "subnet_from_params",
    "subnet_params",
    "suggest_subnet",
    "summary_text",
    "trials_frame",
    "write_report",
]
