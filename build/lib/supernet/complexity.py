"""The analytic cost model of every family: parameters, MACs and FLOPs of a subnet.

Each family computes its own exact breakdown (``supernet/vit/complexity.py``,
``supernet/swin/complexity.py``); these functions dispatch on the space's family.

Counting convention (that of ``torch.utils.flop_counter.FlopCounterMode``): every matmul and the
patch convolution at 2 FLOPs per multiply-accumulate; LayerNorm, GELU, softmax, additions, biases,
rolls and padding cost nothing. So ``flops == 2 * macs`` exactly, for one image. Papers' "FLOPs"
are usually MACs. ``params`` equals ``sum(p.numel() for p in extracted_model.parameters())``
exactly (buffers such as a sinusoidal position embedding or an attention mask are not counted).
"""

from __future__ import annotations

from typing import Any

import torch

from .family import family_of
from .space import Space, Subnet
from .vit.complexity import Complexity

__all__ = ["Complexity", "breakdown", "count_flops", "flops", "macs", "params"]


def breakdown(space: Space, subnet: Subnet) -> Any:
    """The per-component cost of ``subnet`` (validated against ``space``) for one image: the
    family's breakdown, with ``params``, ``macs``, ``flops`` and ``to_dict()``."""
    return family_of(space).breakdown(space, subnet)


def params(space: Space, subnet: Subnet) -> int:
    """Parameter count of the extracted subnet."""
    return int(breakdown(space, subnet).params)


def macs(space: Space, subnet: Subnet) -> int:
    """Multiply-accumulates for one image."""
    return int(breakdown(space, subnet).macs)


def flops(space: Space, subnet: Subnet) -> int:
    """FLOPs for one image (``2 * macs``, the convention of ``FlopCounterMode``)."""
    return int(breakdown(space, subnet).flops)


def count_flops(model: torch.nn.Module, space: Space) -> int:
    """FLOPs of one image through ``model`` as ``FlopCounterMode`` counts them: the check of
    :func:`flops`. Attention runs on the math backend, the only one the counter sees on CPU.
    Works on the meta device (shapes only), which makes 224 px models cheap to count."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    x = torch.randn(1, space.in_chans, space.img_size, space.img_size, device=device)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()
