"""Which subnets a supernet training step trains, and the reference subnets reported each epoch.

- ``uniform`` (AutoFormer): one subnet drawn uniformly from the space per step.
- ``sandwich`` (BigNAS): the largest, the smallest and ``num_random`` random subnets per step,
  gradients accumulated over all of them. With ``distill`` the largest subnet, trained on the
  labels, is the teacher: the others learn its softened predictions (in-place distillation).

The draws come from an explicit, seeded ``random.Random`` whose state goes into every checkpoint,
and every data-parallel rank holds the same one, so all ranks train the same subnets each step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..space import Space, Subnet
from .rng import python_state, set_python_state

__all__ = ["SubnetSampler", "reference_subnets"]


def reference_subnets(space: Space) -> dict[str, Subnet]:
    """The fixed subnets whose validation accuracy is reported: smallest, middle and largest.

    ``middle`` takes the (lower) median choice of every dimension, in every layer.
    """
    return {"smallest": space.smallest(), "middle": space.middle(), "largest": space.largest()}


@dataclass
class SubnetSampler:
    """Draws each step's subnets. ``state()`` / ``load_state()`` go into checkpoints."""

    space: Space
    strategy: str
    num_random: int
    seed: int

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def step(self) -> list[Subnet]:
        """The subnets of the next step; with ``sandwich`` the largest comes first."""
        if self.strategy == "uniform":
            return [self.space.sample(self.rng)]
        randoms = [self.space.sample(self.rng) for _ in range(self.num_random)]
        return [self.space.largest(), self.space.smallest(), *randoms]

    def state(self) -> list[object]:
        return python_state(self.rng)

    def load_state(self, state: list[object]) -> None:
        set_python_state(state, self.rng)
