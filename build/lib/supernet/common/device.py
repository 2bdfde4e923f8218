"""Which device a command runs on: one resolution of ``device=`` for every entry point."""

from __future__ import annotations

import torch

from .errors import UserError

__all__ = ["check_device", "resolve_device"]


def check_device(device: str | torch.device, option: str = "device") -> torch.device:
    """``device`` as a :class:`torch.device`, refused (naming ``option``) when this machine has
    no such device: CUDA without a GPU or with fewer GPUs than the index, MPS off a Mac."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise UserError(
            f"{option}={device} is not a device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserError(
                f"{option}={device}: CUDA is not available on this machine (no CUDA device"
                f"{'' if torch.version.cuda else '; torch is built without CUDA'}); use "
                f"{option}=cpu (or auto)"
            )
        if parsed.index is not None and parsed.index >= count:
            raise UserError(
                f"{option}={device}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}; use one of them, or {option}=cpu (or auto)"
            )
    elif parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(
                f"{option}={device}: MPS (Apple's GPU) is not available on this machine; use "
                f"{option}=cpu (or auto)"
            )
    elif parsed.type != "cpu":
        raise UserError(f"{option}={device} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return parsed


def resolve_device(name: str, option: str = "device", local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA (this process's local GPU under torchrun), then MPS, then the CPU; any
    other name must be a device this machine has (:func:`check_device`, naming ``option``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = check_device(name, option)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device
