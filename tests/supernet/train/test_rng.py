from __future__ import annotations

import io
import random

import numpy as np
import torch

from supernet.train import rng


def _draw(generator: torch.Generator) -> tuple[object, ...]:
    return (
        random.random(),
        float(np.random.rand()),
        float(torch.rand(1)),
        float(torch.rand(1, generator=generator)),
    )


def test_capture_restore_round_trip_through_a_safe_checkpoint() -> None:
    generator = torch.Generator().manual_seed(3)
    _draw(generator)
    state = rng.capture(generator)
    expected = [_draw(generator) for _ in range(5)]
    buffer = io.BytesIO()
    torch.save({"rng": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"]  # plain data and tensors only
    for _ in range(3):
        _draw(generator)  # move everything on
    rng.restore(loaded, generator)
    assert [_draw(generator) for _ in range(5)] == expected
