"""The training app: a weight-sharing supernet once, and single subnets for comparison.

Command line (Hydra; ``conf/train.yaml`` with the groups ``data``, ``space`` and ``train``)::

    python -m supernet.train                                   # digits supernet, sandwich rule
    python -m supernet.train data=fashion_mnist space=fashion_mnist train.epochs=30
    python -m supernet.train mode=finetune subnet=<export dir>
    torchrun --nproc_per_node=2 -m supernet.train ...

Python::

    from supernet.train import run, train_supernet, train_subnet
    result = train_supernet({"run_dir": "runs/a", "space": "digits", "train": {"epochs": 5}})
    result.val_acc  # {"smallest": ..., "middle": ..., "largest": ...}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import MODES, PRECISIONS, STRATEGIES, ConfigError, RunConfig, TrainConfig
from .loop import Hooks, TrainingError
from .sampling import SubnetSampler, reference_subnets
from .subnet_training import SubnetResult, train_subnet
from .supernet_training import SupernetResult, train_supernet

__all__ = [
    "MODES",
    "PRECISIONS",
    "STRATEGIES",
    "ConfigError",
    "Hooks",
    "RunConfig",
    "SubnetResult",
    "SubnetSampler",
    "SupernetResult",
    "TrainConfig",
    "TrainingError",
    "reference_subnets",
    "run",
    "train_subnet",
    "train_supernet",
]


def run(
    config: RunConfig | Mapping[str, Any], hooks: Hooks | None = None
) -> SupernetResult | SubnetResult:
    """Dispatch on ``mode``: ``supernet`` trains a supernet, ``finetune`` / ``scratch`` a subnet."""
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    if config.mode == "supernet":
        return train_supernet(config, hooks)
    return train_subnet(config, hooks)
