"""Data-parallel training over ``torchrun`` processes (gloo on CPU, NCCL on CUDA).

Weight sharing does not suit ``DistributedDataParallel``: each step uses a different subnet, so
whole blocks get no gradient and the sliced parameters get gradients only in part. Instead every
rank samples the *same* subnets (the same seeded sampler on every rank), computes gradients on its
shard of the batch, and :meth:`DistEnv.average_gradients` all-reduces them in one flat buffer.
The parameters that got no gradient are the same on every rank, so the buffers line up.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..common.device import resolve_device as common_resolve_device
from ..common.errors import UserError
from .config import ConfigError

__all__ = ["DistEnv", "resolve_device", "state_digest"]

T = TypeVar("T")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``device=`` of a training run (see :func:`supernet.common.device.resolve_device`); a
    device this machine lacks is a :class:`ConfigError`."""
    try:
        return common_resolve_device(name, "device", local_rank)
    except UserError as exc:
        raise ConfigError(str(exc)) from None


def state_digest(tensors: Iterable[torch.Tensor]) -> str:
    """SHA-256 of the tensors' bytes, in order: equal digests mean bit-identical weights."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        digest.update(str((tuple(t.shape), t.dtype)).encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job: rank, world size, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this object joined the process group, so it leaves it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # -- set up / tear down ----------------------------------------------------------------------
    @classmethod
    def setup(cls, device: str, threads: int | None = None) -> DistEnv:
        """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
        if threads is not None:
            torch.set_num_threads(threads)
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        resolved = resolve_device(device, local_rank)
        owns = False
        if world_size > 1 and not dist.is_initialized():
            if resolved.type == "cuda":
                torch.cuda.set_device(resolved)
            backend = "nccl" if resolved.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
            owns = True
        return cls(rank, world_size, local_rank, resolved, owns)

    def teardown(self, clean: bool = True) -> None:
        """Leave the process group this object joined. After a ``clean`` run every rank first
        waits for the others at a barrier: a rank that left while another still wrote its
        checkpoint made gloo abort that one at exit (SIGABRT, "terminate called without an
        active exception"). After an error, leave at once (the others may never get there)."""
        if self.owns_group and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()

    def __enter__(self) -> DistEnv:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.teardown(clean=exc_type is None)

    # -- collectives (no-ops in a single process) ------------------------------------------------
    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: T) -> list[T]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def mean(self, value: float) -> float:
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def broadcast_module(self, module: nn.Module) -> None:
        """Make every rank start from rank 0's parameters and buffers."""
        if not self.distributed:
            return
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """All-reduce the existing gradients (one flat buffer per dtype) and divide by ranks."""
        if not self.distributed:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for g in grads:
            by_dtype.setdefault(g.dtype, []).append(g)
        for group in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in group])
            dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for g in group:
                n = g.numel()
                g.copy_(flat[offset : offset + n].view_as(g))
                offset += n

    def check_in_sync(self, module: nn.Module) -> str:
        """The weights' digest; raises if any rank holds different weights (a diverged run)."""
        digest = state_digest(module.state_dict().values())
        digests = self.gather_objects(digest)
        if len(set(digests)) > 1:
            raise RuntimeError(
                "data-parallel ranks hold different weights: "
                + ", ".join(f"rank {r}: {d[:12]}" for r, d in enumerate(digests))
            )
        return digest
