"""Batched accuracy of a subnet on data held in memory (validation during training and search)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .model import Supernet
from .space import SubnetConfig

__all__ = ["accuracy", "materialize"]


def materialize(dataset: Dataset[Any], batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of ``dataset`` as two tensors, so repeated evaluations skip loading."""
    xs, ys = [], []
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        xs.append(x)
        ys.append(torch.as_tensor(y))
    if not xs:
        raise ValueError("cannot evaluate on an empty dataset")
    return torch.cat(xs), torch.cat(ys)


@torch.inference_mode()
def accuracy(
    net: Supernet | torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    subnet: SubnetConfig | None = None,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy in [0, 1] of ``net`` (with ``subnet`` for a supernet) in eval mode.

    The module's training mode is restored afterwards.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    correct = 0
    try:
        for start in range(0, len(labels), batch_size):
            x = images[start : start + batch_size].to(device, non_blocking=True)
            y = labels[start : start + batch_size].to(device, non_blocking=True)
            logits = net(x, subnet) if subnet is not None else net(x)
            correct += int((logits.argmax(dim=-1) == y).sum())
    finally:
        net.train(was_training)
    return correct / len(labels)
