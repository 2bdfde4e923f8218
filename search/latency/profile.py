"""A latency profile: the fitted predictor of one device, batch size and thread count, for a space.

Saved as a small YAML file (``latency_profile.yaml``)::

    format: vitnas-latency-profile
    version: 1
    device: cpu
    device_name: 'cpu: AMD EPYC, 2 CPUs'
    threads: 1
    batch_size: 1
    coefficients: {intercept: 0.046, blocks: 0.064, ...}   # milliseconds per unit of each feature
    metrics: {holdout_mape_pct: 1.7, holdout_kendall_tau: 0.93, ...}
    space: {name: fashion_mnist, embed_dim: [64, 80, 96], ...}
    ...

A profile predicts only for the space it was calibrated on (the same choices and geometry): the
fit has seen nothing outside that range. :func:`find_profile` is how a search resolves one for
``budget.latency_ms``; when none fits, its message gives the command that calibrates one.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from supernet import Space, Subnet
from supernet.common.atomic import atomic_write_text
from supernet.common.yamlio import YamlError, read_yaml
from supernet.space import PRESETS_DIR, SpaceError

from .device import device_description, device_kind, effective_threads
from .errors import ProfileError
from .features import feature_matrix, feature_names
from .measure import LatencyMeasurement, measure_latency

__all__ = [
    "DEFAULT_PROFILE_DIR",
    "FORMAT",
    "LatencyProfile",
    "calibrate_command",
    "describe_target",
    "find_profile",
]

FORMAT = "vitnas-latency-profile"
VERSION = 1
#: Where ``calibrate`` files a copy of each profile, and where a search looks for one by default.
DEFAULT_PROFILE_DIR = Path("latency_profiles")


def calibrate_command(
    space: Space, *, device: str = "cpu", batch_size: int = 1, threads: int | None = None
) -> str:
    """The command line that calibrates a profile for these conditions."""
    if space.name and (PRESETS_DIR / f"{space.name}.yaml").is_file():
        try:
            preset = Space.preset(space.name)
        except SpaceError:
            preset = None
        which = f"space={space.name}" if preset == space else "supernet=<your supernet.pt>"
    else:
        which = "supernet=<your supernet.pt>"
    command = f"python -m search.latency calibrate {which} device={device} batch_size={batch_size}"
    if threads is not None and not str(device).startswith("cuda"):
        command += f" threads={threads}"
    return command


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProfileError(f"{what} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LatencyProfile:
    """Non-negative coefficients (ms per unit of each latency feature of the space's family) and
    their context."""

    device: str
    device_name: str
    batch_size: int
    threads: int
    space: Space
    coefficients: Mapping[str, float]
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    n_samples: int = 0
    n_holdout: int = 0
    measurement: Mapping[str, int | str] = field(default_factory=dict)
    torch_version: str = str(torch.__version__)
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: The file it was loaded from (not part of the profile: a copy elsewhere is the same one).
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.space, Space):
            raise ProfileError(f"space must be a search space, got {type(self.space).__name__}")
        features = feature_names(self.space)
        names = set(self.coefficients)
        if names != set(features):
            missing = [n for n in features if n not in names]
            unknown = sorted(names - set(features))
            raise ProfileError(
                f"coefficients must be exactly {', '.join(features)} "
                f"(missing: {', '.join(missing) or 'none'}; "
                f"unknown: {', '.join(unknown) or 'none'})"
            )
        coefficients = {n: _number(self.coefficients[n], f"coefficient {n}") for n in features}
        negative = [n for n, v in coefficients.items() if v < 0]
        if negative:
            raise ProfileError(f"coefficients must be >= 0: {', '.join(negative)}")
        object.__setattr__(self, "coefficients", coefficients)
        for name in ("batch_size", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ProfileError(f"{name} must be a positive integer, got {value!r}")

    # -- prediction ------------------------------------------------------------------------------
    @property
    def vector(self) -> np.ndarray:
        return np.array([self.coefficients[n] for n in feature_names(self.space)], dtype=float)

    def check_applies_to(self, space: Space) -> None:
        """Raise :class:`ProfileError` unless ``space`` is the one this profile was fitted on."""
        differences = self.space.differences(space)
        if differences:
            command = calibrate_command(
                space, device=self.device, batch_size=self.batch_size, threads=self.threads
            )
            raise ProfileError(
                f"this latency profile was calibrated for space {self.space.name or '(unnamed)'!r},"
                f" which differs from {space.name or 'this space'!r} in {', '.join(differences)}:"
                f" calibrate one with `{command}`"
            )

    def predict_many(self, space: Space, subnets: Sequence[Subnet]) -> np.ndarray:
        """Predicted latencies (ms) of a batch of ``batch_size`` images, one per subnet."""
        self.check_applies_to(space)
        return feature_matrix(space, subnets, self.batch_size) @ self.vector

    def predict_ms(self, space: Space, subnet: Subnet) -> float:
        """Predicted latency (ms) of ``subnet`` for one batch of ``batch_size`` images."""
        return float(self.predict_many(space, [subnet])[0])

    def measure(
        self, model: torch.nn.Module, *, warmup: int = 3, repeats: int = 10
    ) -> LatencyMeasurement:
        """Measure ``model`` (a subnet of this profile's space) as the profile was calibrated.

        Same device, batch size, threads and clock, so that the result compares with
        :meth:`predict_ms`: what ``search.measure_latency=true`` records beside the prediction.
        """
        clock = self.measurement.get("clock", "wall")
        return measure_latency(
            model,
            space=self.space,
            batch_size=self.batch_size,
            device=self.device,
            threads=self.threads if self.device == "cpu" else None,
            warmup=warmup,
            repeats=repeats,
            clock="cpu" if clock == "cpu" else "wall",
        )

    # -- matching --------------------------------------------------------------------------------
    def mismatches(
        self,
        space: Space,
        *,
        device: str = "cpu",
        batch_size: int = 1,
        threads: int | None = None,
        device_name: str | None = None,
    ) -> list[str]:
        """Why this profile does not fit the conditions (an empty list when it does)."""
        problems = []
        kind = device_kind(device).type
        if kind != device_kind(self.device).type:
            problems.append(f"device {self.device!r}, not {device!r}")
        else:
            name = device_name if device_name is not None else _device_here(device)
            if name is not None and name != self.device_name:
                problems.append(f"device {self.device_name!r}, not {name!r}")
        if batch_size != self.batch_size:
            problems.append(f"batch size {self.batch_size}, not {batch_size}")
        if kind == "cpu" and effective_threads(threads) != self.threads:
            problems.append(f"{_threads(self.threads)}, not {effective_threads(threads)}")
        differences = self.space.differences(space)
        if differences:
            problems.append(f"another space (differs in {', '.join(differences)})")
        return problems

    def default_filename(self) -> str:
        """A file name that tells profiles apart: space, device, batch, threads, hardware hash."""
        digest = hashlib.sha1(self.device_name.encode()).hexdigest()[:8]
        kind = re.sub(r"[^A-Za-z0-9]+", "", self.device) or "device"
        return (
            f"{self.space.name or 'space'}_{kind}_b{self.batch_size}_t{self.threads}_{digest}.yaml"
        )

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "device": self.device,
            "device_name": self.device_name,
            "threads": self.threads,
            "batch_size": self.batch_size,
            "coefficients": dict(self.coefficients),
            "metrics": dict(self.metrics),
            "n_samples": self.n_samples,
            "n_holdout": self.n_holdout,
            "measurement": dict(self.measurement),
            "torch_version": str(self.torch_version),
            "created": self.created,
            "space": self.space.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "latency profile") -> LatencyProfile:
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ProfileError(
                f"{source} is not a latency profile (no 'format: {FORMAT}'); give a profile "
                "written by `python -m search.latency calibrate`"
            )
        if data.get("version") != VERSION:
            raise ProfileError(
                f"{source} has profile version {data.get('version')!r}; this vitnas reads "
                f"version {VERSION}: calibrate it again"
            )
        required = ("device", "device_name", "threads", "batch_size", "coefficients", "space")
        missing = [k for k in required if k not in data]
        if missing:
            raise ProfileError(f"{source} is missing {', '.join(missing)}; calibrate it again")
        try:
            space = Space.from_dict(data["space"])
        except SpaceError as exc:
            raise ProfileError(f"{source}: {exc}; calibrate it again") from None
        if not isinstance(data["coefficients"], Mapping):
            raise ProfileError(
                f"{source}: coefficients must be a mapping of feature to number; calibrate it again"
            )
        try:
            return cls(
                device=str(data["device"]),
                device_name=str(data["device_name"]),
                batch_size=data["batch_size"],
                threads=data["threads"],
                space=space,
                coefficients=dict(data["coefficients"]),
                metrics=dict(data.get("metrics") or {}),
                n_samples=int(data.get("n_samples", 0)),
                n_holdout=int(data.get("n_holdout", 0)),
                measurement=dict(data.get("measurement") or {}),
                torch_version=str(data.get("torch_version", "unknown")),
                created=str(data.get("created", "")),
            )
        except ProfileError as exc:
            raise ProfileError(f"{source}: {exc}; calibrate it again") from None
        except (TypeError, ValueError) as exc:
            raise ProfileError(f"{source} is malformed: {exc}; calibrate it again") from None

    def save(self, path: str | Path) -> Path:
        """Write the profile as YAML, atomically (no half-written file, even on a crash)."""
        path = Path(path)
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write_text(path, text)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LatencyProfile:
        """Read a profile written by :meth:`save`; problems raise a one-line ProfileError."""
        path = Path(path)
        if not path.is_file():
            raise ProfileError(
                f"latency profile not found: {path}; calibrate one with "
                "`python -m search.latency calibrate space=<space> device=<cpu|cuda> "
                "batch_size=<n>`"
            )
        try:
            data = read_yaml(path, "latency profile")
        except YamlError as exc:
            raise ProfileError(f"{exc}; or calibrate it again") from None
        profile = cls.from_dict(data, source=f"latency profile {path}")
        object.__setattr__(profile, "path", path)
        return profile

    # -- what its latencies are for --------------------------------------------------------------
    def target(self) -> dict[str, Any]:
        """The conditions its latencies hold for: device (and its name), batch size, threads
        (CPU only). What a run records, and what a resumed search must share."""
        return {
            "device": self.device,
            "device_name": self.device_name,
            "batch_size": self.batch_size,
            "threads": self.threads if device_kind(self.device).type == "cpu" else None,
        }

    def describe_target(self) -> str:
        """``"cuda: NVIDIA H200, batch 1"``, ``"cpu: AMD EPYC, 2 CPUs, batch 1, 1 thread"``."""
        return describe_target(self.target())

    def record(self) -> dict[str, Any]:
        """:meth:`target` with the profile's file and calibration date, for a run's records."""
        return {
            **self.target(),
            "profile": str(self.path.resolve()) if self.path is not None else None,
            "calibrated": self.created,
        }


def describe_target(target: Mapping[str, Any]) -> str:
    """A :meth:`LatencyProfile.target` (as a run records it) in words: ``"cuda: NVIDIA H200,
    batch 1"``, ``"cpu: AMD EPYC, 2 CPUs, batch 1, 1 thread"``."""
    text = f"{target['device_name']}, batch {target['batch_size']}"
    if target.get("threads"):
        text += f", {_threads(target['threads'])}"
    return text


def _threads(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def _device_here(device: str) -> str | None:
    """This machine's description of ``device``; None for CUDA on a machine without it, where
    a GPU's profile predicts for the GPU it was calibrated on."""
    if device_kind(device).type == "cuda" and not torch.cuda.is_available():
        return None
    return device_description(device)


def find_profile(
    where: str | Path,
    space: Space,
    *,
    device: str = "cpu",
    batch_size: int = 1,
    threads: int | None = None,
    option: str = "latency_profile",
) -> LatencyProfile:
    """The latency profile for ``space`` on ``device`` at ``batch_size`` and ``threads``.

    ``where`` is a profile file, or a directory of them (``calibrate`` files one in
    :data:`DEFAULT_PROFILE_DIR`); in a directory the newest fitting profile wins. ``threads=None``
    means torch's current thread count (ignored on CUDA). Raises :class:`ProfileError` whose
    message says why nothing fits and gives the command that calibrates a profile. Without a
    GPU here, a ``cuda`` device takes any GPU's profile (``option`` names the setting that picks
    one of several).
    """
    where = Path(where)
    kind = device_kind(device).type
    name = _device_here(device)
    command = calibrate_command(
        space,
        device=device,
        batch_size=batch_size,
        threads=effective_threads(threads) if kind == "cpu" else None,
    )
    here = name if name is not None else "any GPU (this machine has none)"
    wanted = f"space {space.name or '(unnamed)'!r}, {here}, batch size {batch_size}"
    if kind == "cpu":
        wanted += f", {_threads(effective_threads(threads))}"
    on = " on the machine with the GPU" if name is None else ""
    if where.is_file():
        profile = LatencyProfile.load(where)
        problems = profile.mismatches(
            space, device=device, batch_size=batch_size, threads=threads, device_name=name
        )
        if problems:
            raise ProfileError(
                f"latency profile {where} was calibrated for {'; '.join(problems)}: "
                f"calibrate one for {wanted} with `{command}`{on}"
            )
        return profile
    candidates: list[LatencyProfile] = []
    unreadable: list[str] = []
    if where.is_dir():
        for path in sorted(where.glob("*.yaml")):
            try:
                profile = LatencyProfile.load(path)
            except ProfileError:
                unreadable.append(path.name)
                continue
            if not profile.mismatches(
                space, device=device, batch_size=batch_size, threads=threads, device_name=name
            ):
                candidates.append(profile)
    gpus = sorted({p.device_name for p in candidates})
    if name is None and len(gpus) > 1:
        raise ProfileError(
            f"latency profiles in {where}/ fit {wanted} for {len(gpus)} GPUs ({', '.join(gpus)}) "
            f"and this machine has none to choose by: pass {option}=<the profile file> of the "
            "GPU to predict for"
        )
    if candidates:
        return max(candidates, key=lambda p: p.created)
    if where.is_dir():
        place = f"in {where}/"
    elif where.exists():
        place = f"at {where} (not a regular file or directory)"
    else:
        place = f"at {where} (no such file or directory)"
    skipped = f" (skipped unreadable: {', '.join(unreadable)})" if unreadable else ""
    raise ProfileError(
        f"no latency profile {place} for {wanted}{skipped}: "
        f"calibrate one with `{command}`{on} (a few minutes; it files the profile in "
        f"{DEFAULT_PROFILE_DIR}/)"
    )
