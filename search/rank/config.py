"""The options of ``python -m search.rank``: its Hydra structured config, each default and its
help defined once (``conf/rank.yaml`` lists :class:`RankConfig` first). ``python -m search.rank
--help`` lists them; :class:`search.rank.settings.RankSettings` checks their values.

Values that take several forms (a band as ``[low, high]`` or ``centre+-percent``, ``seeds`` as
null or a list) are typed ``Any`` here and checked by the settings, which name the accepted forms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supernet.common.config import option, register

__all__ = ["RankBand", "RankConfig", "RankRecipe"]

_BAND = "[low,high] or centre+-percent"


@dataclass
class RankBand:
    """A cost window: the k subnets are drawn inside it, spread across it, distinct. Several
    costs intersect; the picks spread across the first of params, macs, flops, latency_ms."""

    params: Any = option(None, f"parameters: {_BAND}: [1M,1.2M], 1.1M+-10%")
    macs: Any = option(None, f"multiply-accumulates: {_BAND}: [8M,10M], 8.9M+-10%")
    flops: Any = option(None, f"FLOPs (2 x MACs): {_BAND}: [16M,20M], 18M+-10%")
    latency_ms: Any = option(
        None, f"predicted latency (needs latency_profile): {_BAND}: [2,3], 2.5+-10%"
    )


_AS_SUPERNET = "null: as the supernet was trained"


@dataclass
class RankRecipe:
    """The stand-alone recipe, shared by scratch and fine-tune runs; strategy, num_random and
    distill do not apply to one subnet."""

    epochs: Any = option(None, f"training epochs; {_AS_SUPERNET}")
    batch_size: Any = option(None, f"training batch; {_AS_SUPERNET}")
    lr: Any = option(None, f"peak learning rate; {_AS_SUPERNET}")
    min_lr: Any = option(None, f"final learning rate of the cosine schedule; {_AS_SUPERNET}")
    weight_decay: Any = option(None, f"AdamW weight decay; {_AS_SUPERNET}")
    warmup_epochs: Any = option(None, f"linear warm-up epochs; {_AS_SUPERNET}")
    label_smoothing: Any = option(None, f"label smoothing; {_AS_SUPERNET}")
    grad_clip: Any = option(
        None, "gradient-norm clip; null: as the supernet (its null: no clipping)"
    )
    lazy_updates: Any = option(None, f"AdamW lazy updates; {_AS_SUPERNET}")
    drop_path: Any = option(None, f"stochastic depth rate; {_AS_SUPERNET}")
    precision: Any = option(None, f"fp32, bf16 or fp16; {_AS_SUPERNET}")
    num_workers: Any = option(None, f"data-loader processes; {_AS_SUPERNET}")
    eval_batch_size: Any = option(None, f"evaluation batch; {_AS_SUPERNET}")


@dataclass
class RankConfig:
    supernet: Any = option(None, "path to supernet.pt, or the training run dir holding it")
    k: Any = option(12, "subnets, one per equal-width bin of FLOPs (or of the band)")
    seed: Any = option(0, "the picks, the fine-tune seed, the proxies' initial weights")
    pool_size: Any = option(4096, "random subnets drawn to fill the bins (at most 200,000)")
    band: RankBand = option(RankBand(), "")
    latency_profile: Any = option(
        None, "a latency profile file or directory (null: latency_profiles/)"
    )
    latency_device: Any = option("cpu", "band.latency_ms: the device latency is predicted for")
    latency_batch_size: Any = option(1, "... at this batch size")
    latency_threads: Any = option(None, "... with this many CPU threads; null: torch's")
    seeds: Any = option(
        None,
        "stand-alone seeds ([0,1,2]): tau against their mean accuracy, and seed-to-seed tau; "
        "null: [seed]",
    )
    finetune: Any = option(True, "also fine-tune each subnet from its inherited weights")
    proxies: Any = option(
        ["params", "flops", "depth", "naswot", "synflow", "dss"],
        "cheap rankers beside the supernet (search/rank/proxies.py); []: none",
    )
    proxy_batches: Any = option(3, "validation batches the zero-cost proxies are scored on")
    proxy_batch_size: Any = option(128, "images per proxy batch")
    scratch_dir: Any = option(
        None,
        "stand-alone runs, reused when the same (null: <run dir>/scratch)",
    )
    n_jobs: Any = option(1, "training processes at once")
    threads: Any = option(1, "torch threads per process (small models run fastest on one)")
    device: Any = option("auto", "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    png: Any = option(True, "also write rank.png when kaleido + Chromium are available")
    progress: Any = option(
        "auto", "auto: a bar on a terminal, else a log line a minute | true (a bar) | false"
    )
    train: RankRecipe = option(RankRecipe(), "")
    debug: Any = option(False, "show the traceback of a user error instead of one line")


register("rank_schema", RankConfig)  # what conf/rank.yaml's defaults list first
