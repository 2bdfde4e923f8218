"""Errors of the latency tools: each one says what went wrong and how to fix it, in one message."""

from __future__ import annotations

from supernet.common.errors import UserError

__all__ = ["LatencyError", "ProfileError"]


class LatencyError(UserError):
    """A latency request that cannot be met: an unknown or unavailable device, bad settings."""


class ProfileError(LatencyError):
    """A latency profile that is missing, corrupt, or calibrated for another device or space."""
