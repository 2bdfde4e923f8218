"""How well a supernet ranks its subnets: inherited-weight vs stand-alone accuracy.

``python -m search.rank supernet=<supernet.pt> k=12 train.epochs=10 n_jobs=2`` picks ``k``
subnets stratified across FLOPs (one per equal-width FLOP bin, :func:`pick_subnets`), trains each
alone from random initialisation (``mode=scratch``) and fine-tunes each from its inherited weights
(``mode=finetune``) with the same recipe, the supernet's own unless ``train.*`` says otherwise, on
the data the supernet was trained on. It reports Kendall's τ and Spearman's ρ between
inherited-weight validation accuracy and stand-alone test accuracy, the inherited / fine-tuned /
scratch accuracy of every subnet (AutoFormer's inherit-vs-retrain table), a plotly scatter and a
one-line verdict. Outputs in the run dir: ``rank.csv``, ``rank.yaml``, ``rank.html`` (+ ``.png``),
``scratch/<subnet>/`` and ``finetune/<subnet>/`` (one training run each, with its exported model).

Python::

    from search.rank import run_ranking
    result = run_ranking({"supernet": "runs/demo/supernet.pt", "k": 12,
                          "train": {"epochs": 10}}, "runs/rank")
    result.stats["kendall_tau"], result.verdict
"""

from __future__ import annotations

from .jobs import SubnetJob, run_jobs
from .pick import pick_subnets, slug
from .runner import MANIFEST, RankResult, run_ranking
from .settings import RankError, RankSettings, recipe
from .table import COLUMNS, RELIABLE_TAU, rank_figure, rank_stats, rank_table, verdict

__all__ = [
    "COLUMNS",
    "MANIFEST",
    "RELIABLE_TAU",
    "RankError",
    "RankResult",
    "RankSettings",
    "SubnetJob",
    "pick_subnets",
    "rank_figure",
    "rank_stats",
    "rank_table",
    "recipe",
    "run_jobs",
    "run_ranking",
    "slug",
    "verdict",
]
