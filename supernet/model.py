"""The weight-sharing supernet: one set of weights, any subnet of the space, for every family.

>>> space = SearchSpace.preset("digits")
>>> net = Supernet(space)                  # the space's family's supernet (a VitSupernet here)
>>> logits = net(images, space.largest())  # the subnet is an argument, never module state
>>> model = net.extract(space.smallest())  # a standalone model holding copies of the weights

``Supernet(space)`` builds the supernet of ``space.family`` (as ``pathlib.Path`` builds a
``PosixPath``); every family's supernet is a subclass, so ``isinstance(net, Supernet)`` holds.
A family's subclass defines ``forward(x, subnet)`` and :meth:`Supernet.subnet_state_dict`;
extraction is shared: the standalone model is built from the space and loaded with the slices.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .common.resources import check_memory
from .family import family_of
from .space import Space, Subnet

__all__ = ["Supernet", "weight_count"]


def weight_count(space: Space) -> int:
    """The parameters of ``space``'s supernet, before building it: its largest subnet's, which
    holds every weight of it (tests/supernet/test_model.py checks this against the supernet
    built on the meta device for every preset; building it there costs a 3 s import of
    torch._dynamo, which every search worker would pay)."""
    from . import complexity

    return complexity.params(space, space.largest())


class Supernet(nn.Module):
    """Base of every family's supernet; ``Supernet(space)`` builds the right one."""

    space: Space

    def __new__(cls, space: Space | None = None, *args: Any, **kwargs: Any) -> Supernet:
        if cls is Supernet:
            if not isinstance(space, Space):
                kind = type(space).__name__
                raise TypeError(f"expected a SearchSpace (or another family's space), got {kind}")
            cls = family_of(space).supernet_cls
        if isinstance(space, Space) and torch.get_default_device().type != "meta":
            # Refused before allocating: the allocator (or the OOM killer) is rougher.
            count = weight_count(space)
            check_memory(
                4 * count,
                f"the supernet of this search space ({count:,} float32 weights)",
                "choose smaller space.* choices (widths, depths, heads, MLP ratios)",
            )
        return super().__new__(cls)

    # -- what a family defines -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, subnet: Subnet) -> torch.Tensor:  # pragma: no cover
        """Logits of ``subnet`` for images ``x`` of shape (B, in_chans, img_size, img_size)."""
        raise NotImplementedError

    def subnet_state_dict(self, subnet: Subnet) -> dict[str, torch.Tensor]:  # pragma: no cover
        """The subnet's slices of the supernet weights, keyed as in the standalone model.

        The tensors are views (they share storage with the supernet); clone them to keep them.
        """
        raise NotImplementedError

    def no_weight_decay(self) -> set[str]:
        """Names of 2-D (or larger) parameters exempt from weight decay (as timm's models say)."""
        return set()

    # -- shared ----------------------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        s = self.space
        expected = (s.in_chans, s.img_size, s.img_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape (batch, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"for this space, got {tuple(x.shape)}"
            )

    @torch.no_grad()
    def extract(self, subnet: Subnet, drop_path_rate: float = 0.0) -> nn.Module:
        """A standalone model holding copies of the subnet's weights.

        It lives on the supernet's device and dtype, in eval mode, and needs no supernet to run.
        """
        ref = next(self.parameters())
        with torch.device(ref.device):
            model = family_of(self.space).build_model(
                self.space, subnet, drop_path_rate=drop_path_rate
            )
        model.to(dtype=ref.dtype)
        model.load_state_dict(
            {k: v.detach().clone().contiguous() for k, v in self.subnet_state_dict(subnet).items()},
            strict=True,
        )
        return model.eval()
