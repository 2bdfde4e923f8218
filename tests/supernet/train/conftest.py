from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Factory = Callable[..., dict[str, Any]]


@pytest.fixture
def tiny_run(tmp_path: Path) -> Factory:
    """A digits run small enough for a test: 128 training images, 4 steps per epoch."""

    def make(
        run: str = "run", *, data: dict[str, Any] | None = None, **train: Any
    ) -> dict[str, Any]:
        return {
            "run_dir": str(tmp_path / run),
            "space": "digits",
            "threads": 1,
            "data": {"name": "digits", "train_subset": 128, **(data or {})},
            "train": {"epochs": 2, "batch_size": 32, "warmup_epochs": 0.5, **train},
        }

    return make
