"""Fitting the latency model, and scoring it: non-negative least squares on relative error.

``latency ~ features @ coefficients`` with every coefficient >= 0 (a term of work can't save
time), solved by :func:`scipy.optimize.nnls`. Rows are divided by the measured latency, so the fit
minimises the squared *relative* error, the quantity MAPE reports, instead of letting the slowest
subnets dominate. Columns are scaled to unit maximum first, for conditioning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["fit_nnls", "kendall_tau", "mape"]


def fit_nnls(features: np.ndarray, latency_ms: Sequence[float]) -> np.ndarray:
    """Non-negative coefficients minimising the squared relative error of ``features @ coef``."""
    x = np.asarray(features, dtype=float)
    y = np.asarray(latency_ms, dtype=float)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"features {x.shape} and latencies {y.shape} do not match")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise ValueError("latencies must be positive and finite")
    scale = np.abs(x).max(axis=0)
    scale[scale == 0] = 1.0
    weighted = (x / scale) / y[:, None]
    from scipy.optimize import nnls  # here: scipy takes a second to import, most runs fit nothing

    coef, _ = nnls(weighted, np.ones_like(y), maxiter=50 * x.shape[1])
    return coef / scale


def mape(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Mean absolute percentage error, in percent."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return float(np.mean(np.abs(p - m) / m) * 100.0)


def kendall_tau(predicted: Sequence[float], measured: Sequence[float]) -> float:
    """Kendall's tau-b between two rankings (nan when either side is constant)."""
    from scipy.stats import kendalltau

    tau = kendalltau(predicted, measured).statistic
    return float(tau) if tau is not None and math.isfinite(tau) else float("nan")
