"""Latency on the user's device: measure subnets, and predict latency from the complexity model.

Public API::

    from search.latency import (
        measure_latency, LatencyMeasurement, device_description,
        latency_features, FEATURES, LatencyProfile, find_profile, calibrate, Calibration,
    )

    profile = find_profile("latency_profiles", space, device="cpu", batch_size=1)
    profile.predict_ms(space, subnet)                 # milliseconds for one batch

Command line: ``python -m search.latency calibrate space=fashion_mnist device=cpu batch_size=1``.
"""

from __future__ import annotations

from .allocator import steady_allocator
from .calibrate import Calibration, calibrate
from .design import count_subnets, designed_sample, holdout_sample
from .device import device_description, parse_device
from .errors import LatencyError, ProfileError
from .features import FEATURES, feature_matrix, latency_features
from .fit import fit_nnls, kendall_tau, mape
from .measure import LatencyMeasurement, measure_latency
from .profile import DEFAULT_PROFILE_DIR, LatencyProfile, calibrate_command, find_profile
from .report import scatter_figure, write_latency_report

__all__ = [
    "DEFAULT_PROFILE_DIR",
    "FEATURES",
    "Calibration",
    "LatencyError",
    "LatencyMeasurement",
    "LatencyProfile",
    "ProfileError",
    "calibrate",
    "calibrate_command",
    "count_subnets",
    "designed_sample",
    "device_description",
    "feature_matrix",
    "find_profile",
    "fit_nnls",
    "holdout_sample",
    "kendall_tau",
    "latency_features",
    "mape",
    "measure_latency",
    "parse_device",
    "scatter_figure",
    "steady_allocator",
    "write_latency_report",
]
