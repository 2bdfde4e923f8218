"""Batched accuracy of a subnet on data held in memory (validation during training and search)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .model import Supernet
from .space import Subnet

__all__ = ["EvalSet", "accuracies", "accuracy", "in_memory", "materialize"]


def materialize(dataset: Dataset[Any], batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """All images and labels of ``dataset`` as two tensors, so repeated evaluations skip loading."""
    xs, ys = [], []
    # An own generator: iterating a loader would otherwise draw from torch's global one.
    loader = DataLoader(dataset, batch_size=batch_size, generator=torch.Generator())
    for x, y in loader:
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
    subnet: Subnet | None = None,
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


def in_memory(dataset: Dataset[Any]) -> bool:
    """Whether ``dataset`` is (a subset of) a ``TensorDataset``, i.e. already held in memory."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return isinstance(dataset, TensorDataset)


class EvalSet:
    """A split ready for repeated evaluation: tensors when it is in memory anyway (digits,
    Fashion-MNIST, CIFAR), else streamed through a ``DataLoader`` (ImageFolder)."""

    def __init__(self, dataset: Dataset[Any], batch_size: int = 512, num_workers: int = 0) -> None:
        self.batch_size = batch_size
        self.tensors = materialize(dataset, batch_size) if in_memory(dataset) else None
        self.loader = (
            None
            if self.tensors is not None
            else DataLoader(
                dataset,
                batch_size=batch_size,
                num_workers=num_workers,
                generator=torch.Generator(),  # leave torch's global generator alone
            )
        )
        self.size = len(dataset)  # type: ignore[arg-type]
        if self.size == 0:
            raise ValueError("cannot evaluate on an empty dataset")

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            x, y = self.tensors
            for start in range(0, len(y), self.batch_size):
                yield x[start : start + self.batch_size], y[start : start + self.batch_size]
        else:
            assert self.loader is not None
            for x, y in self.loader:
                yield x, torch.as_tensor(y)


@torch.inference_mode()
def accuracies(
    net: Supernet | torch.nn.Module,
    data: EvalSet,
    subnets: Mapping[str, Subnet | None],
) -> dict[str, float]:
    """Top-1 accuracy of several subnets (``None``: ``net`` is a standalone model) in one pass
    over ``data``, each batch loaded once. The module's training mode is restored afterwards."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    correct = dict.fromkeys(subnets, 0)
    try:
        for x, y in data.batches():
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            for name, subnet in subnets.items():
                logits = net(x, subnet) if subnet is not None else net(x)
                correct[name] += int((logits.argmax(dim=-1) == y).sum())
    finally:
        net.train(was_training)
    return {name: c / data.size for name, c in correct.items()}
