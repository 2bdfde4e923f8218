"""How well a supernet ranks its subnets: inherited-weight vs stand-alone accuracy, beside proxies.

``python -m search.rank supernet=<supernet.pt> k=12 train.epochs=10 n_jobs=2`` picks ``k``
subnets stratified across FLOPs (one per equal-width FLOP bin, :func:`pick_subnets`) or, with
``band.<cost>=...``, spread across a cost window (:mod:`search.rank.band`), trains each alone from
random initialisation (``mode=scratch``, once per seed of ``seeds=[...]``) and fine-tunes each
from its inherited weights (``mode=finetune``) with the same recipe, the supernet's own unless
``train.*`` says otherwise, on the data the supernet was trained on. It reports Kendall's τ and
Spearman's ρ between inherited-weight validation accuracy and stand-alone test accuracy (the
seeds' mean), the same for every proxy (:mod:`search.rank.proxies`: params, FLOPs, depth and
zero-cost proxies), the seed-to-seed τ (:mod:`search.rank.noise`), the inherited / fine-tuned /
scratch accuracy of every subnet (AutoFormer's inherit-vs-retrain table), a plotly figure and
three one-line verdicts. Outputs in the run dir: ``rank.csv``, ``rank.yaml``, ``rank.html``
(+ ``.png``), ``scratch/seed<s>/<subnet>/`` and ``finetune/<subnet>/`` (one training run each).

Python::

    from search.rank import run_ranking
    result = run_ranking({"supernet": "runs/demo/supernet.pt", "k": 12,
                          "train": {"epochs": 10}}, "runs/rank")
    result.stats["kendall_tau"], result.verdict
"""

from __future__ import annotations

from .band import Band, BandError, pick_in_band
from .jobs import SubnetJob, run_jobs
from .noise import MEASURABLE_TAU, pairwise_tau, split_half_tau
from .pick import pick_subnets, slug
from .proxies import DEFAULT_PROXIES, PROXIES, proxy_batches, score_proxies
from .runner import MANIFEST, RankResult, run_ranking
from .settings import RankError, RankSettings, recipe
from .table import (
    COLUMNS,
    RELIABLE_TAU,
    SEED_COLUMN,
    noise_verdict,
    proxy_column,
    proxy_verdict,
    rank_figure,
    rank_stats,
    rank_table,
    ranker_stats,
    verdict,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_PROXIES",
    "MANIFEST",
    "MEASURABLE_TAU",
    "PROXIES",
    "RELIABLE_TAU",
    "SEED_COLUMN",
    "Band",
    "BandError",
    "RankError",
    "RankResult",
    "RankSettings",
    "SubnetJob",
    "noise_verdict",
    "pairwise_tau",
    "pick_in_band",
    "pick_subnets",
    "proxy_batches",
    "proxy_column",
    "proxy_verdict",
    "rank_figure",
    "rank_stats",
    "rank_table",
    "ranker_stats",
    "recipe",
    "run_jobs",
    "run_ranking",
    "score_proxies",
    "slug",
    "split_half_tau",
    "verdict",
]
