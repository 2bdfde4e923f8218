"""Random number generator states as plain data, so a checkpoint loads with ``weights_only=True``.

A resumed run restores every generator that training draws from: Python's ``random``, NumPy's
global generator, torch's CPU (and CUDA) generators, the batch augmentation's generator and the
subnet sampler (an explicit ``random.Random``). Together with a data order that is a function of
(seed, epoch), this makes a resumed run continue exactly where an uninterrupted one would be.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["MAX_SEED", "capture", "python_state", "restore", "seed_problem", "set_python_state"]

#: Seeds run from 0 to this (NumPy's and most samplers' range; a table column holds it).
MAX_SEED = 2**32 - 1


def seed_problem(option: str, value: object, allow_none: bool = False) -> str | None:
    """What is wrong with a seed a user gave (None when nothing): an integer in 0..MAX_SEED."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:40]}…"
        return (
            f"{option} must be an integer from 0 to {MAX_SEED}{' or null' * allow_none}, got "
            f"{shown}; pass {option}=0 (or any seed in that range)"
        )
    return None


def python_state(rng: random.Random | None = None) -> list[Any]:
    """``rng.getstate()`` (or the global one) as nested lists of ints."""
    version, internal, gauss = (rng or random).getstate()  # type: ignore[misc]
    return [version, list(internal), gauss]


def set_python_state(state: list[Any], rng: random.Random | None = None) -> None:
    version, internal, gauss = state
    (rng or random).setstate((version, tuple(internal), gauss))  # type: ignore[arg-type]


def _numpy_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {
        "name": str(name),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "gauss": float(gauss),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["gauss"]))


def capture(augment: torch.Generator | None = None) -> dict[str, Any]:
    """This process's generator states: tensors, lists and numbers only."""
    return {
        "python": python_state(),
        "numpy": _numpy_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "augment": augment.get_state() if augment is not None else None,
    }


def restore(state: dict[str, Any], augment: torch.Generator | None = None) -> None:
    """Put back what :func:`capture` returned."""
    set_python_state(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if augment is not None and state["augment"] is not None:
        augment.set_state(state["augment"].cpu())
