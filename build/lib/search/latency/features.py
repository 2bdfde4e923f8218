"""Latency features of a subnet: the terms of its family's complexity model, for a batch.

A forward pass costs time for its matrix products (proportional to MACs, with an efficiency that
differs between kinds of product), for its element-wise and memory-bound work (each proportional
to the elements it touches) and a fixed cost per operator launched. Each feature is one such term
for a whole batch; a latency profile weighs them with non-negative coefficients (milliseconds per
unit). Each family defines its features (``supernet/<family>/latency.py``): the ViT family's are
:data:`FEATURES`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from supernet import Space, Subnet, family_of
from supernet.vit.latency import FEATURES

__all__ = ["FEATURES", "feature_matrix", "feature_names", "latency_features"]


def feature_names(space: Space) -> dict[str, str]:
    """The latency features of ``space``'s family: name → what it counts."""
    return family_of(space).latency_feature_names


def latency_features(space: Space, subnet: Subnet, batch_size: int) -> dict[str, float]:
    """The features of ``subnet`` (validated against ``space``) for a batch."""
    return family_of(space).latency_features(space, subnet, batch_size)


def feature_matrix(space: Space, subnets: Sequence[Subnet], batch_size: int) -> np.ndarray:
    """One row of features per subnet, shape ``(len(subnets), len(feature_names(space)))``."""
    names = feature_names(space)
    rows = [latency_features(space, s, batch_size) for s in subnets]
    return np.array([[row[name] for name in names] for row in rows], dtype=float).reshape(
        len(rows), len(names)
    )
