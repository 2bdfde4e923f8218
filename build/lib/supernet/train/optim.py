"""AdamW with warmup + cosine, and what weight sharing does to it.

Weight sharing and AdamW: a step's subnet uses leading slices of the shared weights. Blocks beyond
its depth get no gradient at all (``None``), and PyTorch's AdamW skips them entirely. The sliced
tensors, though, get a gradient that is zero outside the slice, and AdamW still moves those
entries: weight decay shrinks them and the running first moment keeps pushing them along their
earlier direction. AutoFormer trains this way (it uses plain AdamW), and with sandwich sampling
the largest subnet touches every entry every step, so it only matters for uniform sampling.
``train.lazy_updates=true`` makes the update lazy instead (as TensorFlow's LazyAdam does for
sparse gradients): entries whose gradient is exactly zero this step keep their value and their
moment estimates. Tests pin both behaviours.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.optim import AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

from .config import TrainConfig

__all__ = ["build_optimizer", "lazy_step", "warmup_cosine"]

#: Parameters exempt from weight decay besides biases and norm weights (as in timm's ViT and
#: Swin): the CLS token, positions and relative-position tables, by the last part of their name.
NO_DECAY = ("cls_token", "pos_embed", "relative_position_bias_table")


def build_optimizer(model: nn.Module, config: TrainConfig) -> AdamW:
    """AdamW; no weight decay on 1-D parameters (biases, norms), the CLS token, positions and
    relative-position tables, nor on what the model's ``no_weight_decay()`` names (timm's
    convention)."""
    skip = getattr(model, "no_weight_decay", None)
    exempt = set(skip()) if callable(skip) else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.split(".")[-1] in NO_DECAY or name in exempt:
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return AdamW(groups, lr=config.lr)


def warmup_cosine(optimizer: Optimizer, config: TrainConfig, steps_per_epoch: int) -> LambdaLR:
    """Per-step schedule: linear warmup to ``lr``, then a cosine down to ``min_lr``."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total, round(config.warmup_epochs * steps_per_epoch))
    floor = config.min_lr / config.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def lazy_step(optimizer: Optimizer, step: Callable[[], object]) -> None:
    """Run ``step()`` but keep every entry whose gradient is exactly zero, and its moments.

    Moments that ``step()`` creates (the first step of a parameter) are zero where the gradient
    was zero already, so only moments that existed before need to be put back.
    """
    kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]] = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is None:
                continue
            idle = p.grad == 0
            if not bool(idle.any()):
                continue
            state = optimizer.state.get(p, {})
            moments = {
                k: v.clone()
                for k, v in state.items()
                if isinstance(v, torch.Tensor) and v.shape == p.shape
            }
            kept.append((p, idle, p.detach().clone(), moments))
    step()
    with torch.no_grad():
        for p, idle, value, moments in kept:
            p.copy_(torch.where(idle, value, p))
            state = optimizer.state[p]
            for k, old in moments.items():
                state[k].copy_(torch.where(idle, old, state[k]))
