"""Checks of plain values that several configs share: integers (not booleans) and finite
numbers."""

from __future__ import annotations

import math

__all__ = ["is_int", "is_number"]


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(float(value))  # type: ignore[arg-type]
