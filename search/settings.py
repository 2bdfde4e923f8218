"""The search's settings: the structured config (:mod:`search.config`) checked once and typed.

Hydra (or :func:`supernet.common.config.load`, for a plain mapping) checks keys and types against
:class:`~search.config.SearchConfig`; :meth:`SearchSettings.from_config` adds the range checks and
parses the budget into a :class:`~search.budget.Budget`. Every problem a user can type is a
one-line :class:`~supernet.common.errors.UserError`. The settings are a frozen dataclass: worker
processes receive them as JSON (:meth:`SearchSettings.to_json`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from supernet import Space
from supernet.common.config import load
from supernet.common.console import progress_mode
from supernet.common.device import check_device
from supernet.common.errors import UserError, quoted
from supernet.common.resources import ResourceError, check_threads, cpu_cores
from supernet.train.rng import seed_problem

from .budget import Budget
from .config import SearchConfig
from .costs import METRICS, resolve_latency_profile
from .latency import LatencyProfile
from .latency.device import latency_device_option
from .samplers import OPTIONS, SAMPLERS, resolve_sampler_name

__all__ = ["SearchSettings", "SettingsError"]

_DIRECTIONS = {"val_acc": "maximize", **dict.fromkeys(METRICS, "minimize")}


class SettingsError(UserError):
    """A search setting with an impossible value."""


def _positive_int(key: str, value: Any, allow_none: bool = False, allow_zero: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if allow_zero else 1):
        kind = "a non-negative" if allow_zero else "a positive"
        raise SettingsError(
            f"{key} must be {kind} integer{' or null' * allow_none}, got {quoted(value)}; pass "
            f"{key}=<{'0' if allow_zero else '1'} or more>"
        )
    return value


#: Worker processes per CPU core at most (more only wait for each other; two per core still
#: helps when trials wait on a remote database).
WORKERS_PER_CORE = 2


def _check_measurable(device: str) -> None:
    """Predicting latency for a GPU needs only its profile; measuring it needs the GPU."""
    try:
        check_device(device, "search.latency_device")
    except UserError:
        raise SettingsError(
            f"search.measure_latency=true measures every feasible subnet on "
            f"search.latency_device={device}, and this machine has no such device; pass "
            "search.measure_latency=false (the prediction from that device's profile needs no "
            "GPU), or search on the machine with the GPU"
        ) from None


def _workers(value: Any) -> int:
    n = _positive_int("search.n_workers", value)
    cores = cpu_cores()
    if n > WORKERS_PER_CORE * cores:
        raise ResourceError(
            f"search.n_workers={n} is more than this machine can run: it has {cores} CPU "
            f"core(s), and more than {WORKERS_PER_CORE} workers per core only wait for each "
            f"other; use search.n_workers={WORKERS_PER_CORE * cores} or fewer (for more, run "
            "the same command on other machines with a shared PostgreSQL search.storage)"
        )
    return n


@dataclass(frozen=True)
class SearchSettings:
    supernet: Path
    objectives: tuple[str, ...] = ("val_acc",)
    budget: Budget = field(default_factory=Budget)
    n_trials: int = 100
    timeout: float | None = None
    sampler: str = "auto"
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    n_workers: int = 1
    worker_restarts: int = 3
    storage: str | None = None
    study_name: str | None = None
    val_size: int | None = None
    batch_size: int = 1000
    device: str = "auto"
    threads: int | None = None
    latency_profile: str | None = None
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    latency_threads: int | None = None
    measure_latency: bool = False
    heartbeat_interval: int | None = 60
    grace_period: int | None = 120
    max_retry: int | None = 3
    seed_trials: bool = True
    progress: str = "auto"  # auto | true | false (supernet.common.console)
    verbose: bool = False
    plots_png: bool = True
    seed: int | None = 0

    @property
    def directions(self) -> list[str]:
        return [_DIRECTIONS[name] for name in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def sampler_name(self) -> str:
        """The sampler actually used (``auto`` resolved)."""
        return resolve_sampler_name(self.sampler, len(self.objectives))

    @property
    def cost_axis(self) -> str:
        """The cost the Pareto front and plots use: the cost objective, else the first budgeted
        cost, else FLOPs."""
        if self.multi_objective:
            return self.objectives[1]
        metrics = self.budget.metrics
        return metrics[0] if metrics else "flops"

    def needs_latency(self) -> list[str]:
        """The settings that need a latency predictor (for the message when there is none)."""
        needs = []
        if self.budget.bound("latency_ms") is not None:
            needs.append("budget.latency_ms")
        if "latency_ms" in self.objectives:
            needs.append("search.objectives=[val_acc,latency_ms]")
        if self.measure_latency:
            needs.append("search.measure_latency=true")
        return needs

    def latency(self, space: Space) -> LatencyProfile | None:
        """The latency profile these settings ask for (None when none is needed or found)."""
        return resolve_latency_profile(
            self.latency_profile,
            space,
            needed_by=self.needs_latency(),
            device=self.latency_device,
            batch_size=self.latency_batch_size,
            threads=self.latency_threads,
            option="search.latency_profile",
        )

    def replace(self, **changes: Any) -> SearchSettings:
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """The settings as JSON (for worker processes): :meth:`from_json` reads them back."""
        data = asdict(self)
        data["supernet"] = str(self.supernet)
        data["budget"] = self.budget.to_config()
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str | Mapping[str, Any]) -> SearchSettings:
        data = dict(json.loads(text) if isinstance(text, str) else text)
        data["supernet"] = Path(data["supernet"])
        data["objectives"] = tuple(data["objectives"])
        data["budget"] = Budget.from_config(data["budget"])
        return cls(**data)

    # -- from the Hydra config -------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> SearchSettings:
        """From the composed Hydra config (``conf/search.yaml``) or a plain mapping with the
        same keys (:class:`~search.config.SearchConfig`)."""
        conf = load(SearchConfig, cfg, drop=("hydra",))
        s = asdict(conf.search)
        data = {"supernet": conf.supernet, "seed": conf.seed, "budget": asdict(conf.budget)}
        if not data.get("supernet"):
            raise SettingsError(
                "no supernet checkpoint given; pass supernet=<path to supernet.pt> "
                "(train one with `python -m supernet.train`)"
            )
        objectives = s.get("objectives", ["val_acc"])
        if isinstance(objectives, str):
            objectives = [objectives]
        objectives = tuple(objectives)
        if (
            not objectives
            or objectives[0] != "val_acc"
            or len(objectives) > 2
            or any(o not in METRICS for o in objectives[1:])
        ):
            raise SettingsError(
                f"search.objectives must be [val_acc] or [val_acc, <cost>] with a cost among "
                f"{', '.join(METRICS)}, got {list(objectives)}; pass search.objectives=[val_acc] "
                "or search.objectives=[val_acc,flops]"
            )
        sampler = str(s.get("sampler", "auto"))
        if sampler not in SAMPLERS:
            raise SettingsError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
        resolved = resolve_sampler_name(sampler, len(objectives))
        sampler_options = dict(s.get(resolved) or {}) if resolved in OPTIONS else {}
        timeout = s.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise SettingsError(
                f"search.timeout must be a positive number of seconds or null, got "
                f"{quoted(timeout)}; pass search.timeout=<seconds> or null"
            )
        device = str(s.get("device", "auto"))
        seed = data.get("seed", 0)
        problem = seed_problem("seed", seed, allow_none=True)
        if problem:
            raise SettingsError(problem)
        settings = cls(
            supernet=Path(str(data["supernet"])).expanduser(),
            objectives=objectives,
            budget=Budget.from_config(data["budget"]),
            n_trials=_positive_int("search.n_trials", s.get("n_trials", 100), allow_zero=True),
            timeout=float(timeout) if timeout is not None else None,
            sampler=sampler,
            sampler_options=sampler_options,
            n_workers=_workers(s.get("n_workers", 1)),
            worker_restarts=_positive_int(
                "search.worker_restarts", s.get("worker_restarts", 3), allow_zero=True
            ),
            storage=s.get("storage"),
            study_name=s.get("study_name"),
            val_size=_positive_int("search.val_size", s.get("val_size"), allow_none=True),
            batch_size=_positive_int("search.batch_size", s.get("batch_size", 1000)),
            device=device,
            threads=check_threads(
                "search.threads",
                _positive_int("search.threads", s.get("threads"), allow_none=True),
            ),
            latency_profile=s.get("latency_profile"),
            latency_device=latency_device_option(
                "search.latency_device", s.get("latency_device", "cpu")
            ),
            latency_batch_size=_positive_int(
                "search.latency_batch_size", s.get("latency_batch_size", 1)
            ),
            latency_threads=check_threads(
                "search.latency_threads",
                _positive_int("search.latency_threads", s.get("latency_threads"), allow_none=True),
            ),
            measure_latency=bool(s.get("measure_latency", False)),
            heartbeat_interval=_positive_int(
                "search.heartbeat_interval", s.get("heartbeat_interval", 60), allow_none=True
            ),
            grace_period=_positive_int(
                "search.grace_period", s.get("grace_period", 120), allow_none=True
            ),
            max_retry=_positive_int(
                "search.max_retry", s.get("max_retry", 3), allow_none=True, allow_zero=True
            ),
            seed_trials=bool(s.get("seed_trials", True)),
            progress=progress_mode(s.get("progress", "auto"), "search.progress"),
            verbose=bool(s.get("verbose", False)),
            plots_png=bool(s.get("plots_png", True)),
            seed=seed,
        )
        if device != "auto":
            check_device(device, "search.device")  # a device this machine has
        if settings.measure_latency and settings.latency_device != "cpu":
            _check_measurable(settings.latency_device)
        return settings
