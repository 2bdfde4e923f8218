"""The ranking command's settings (``conf/rank.yaml``), read and checked once.

Every value a user can type wrong is reported as one :class:`RankError` line. The stand-alone
recipe is the supernet's own (its checkpoint's ``train`` config) with the non-null ``train.*``
overrides on top, validated by :class:`supernet.train.TrainConfig`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from supernet.common.console import progress_mode
from supernet.common.device import check_device
from supernet.common.errors import UserError, quoted
from supernet.common.resources import check_threads, cpu_cores
from supernet.train import ConfigError, TrainConfig
from supernet.train.rng import MAX_SEED, seed_problem

from ..latency.device import latency_device_option
from ..latency.errors import LatencyError

if TYPE_CHECKING:
    from .band import Band

__all__ = ["SUBNET_ONLY", "RankError", "RankSettings", "recipe"]

#: Supernet-only options of a training recipe: meaningless when one subnet trains alone.
SUBNET_ONLY = ("strategy", "num_random", "distill")


class RankError(UserError):
    """A ranking setting with an impossible value, or a supernet that cannot be ranked."""


#: The most random draws ``pool_size`` may ask for: a band draws up to 16 times as many, and a
#: billion hung the command for good, silent.
MAX_POOL_SIZE = 200_000


def _int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise RankError(
            f"{key} must be an integer ≥ {low}, got {quoted(value)}; pass {key}={low} or more"
        )
    if high is not None and value > high:
        raise RankError(f"{key} must be at most {high:,}, got {value:,}; pass {key}={high} or less")
    return value


@dataclass(frozen=True)
class RankSettings:
    supernet: Path
    k: int = 12
    seed: int = 0
    pool_size: int = 4096
    finetune: bool = True
    scratch_dir: Path | None = None
    n_jobs: int = 1
    threads: int = 1
    device: str = "auto"
    png: bool = True
    progress: str = "auto"
    train: Mapping[str, Any] = field(default_factory=dict)  # the non-null train.* overrides
    band: Band | None = None  # None or an empty band: across the whole space
    seeds: tuple[int, ...] = ()  # the stand-alone seeds; () means (seed,)
    proxies: tuple[str, ...] = ()
    proxy_batches: int = 3
    proxy_batch_size: int = 128
    latency_profile: str | None = None  # for band.latency_ms: the profile of this target
    latency_device: str = "cpu"
    latency_batch_size: int = 1
    latency_threads: int | None = None

    @property
    def scratch_seeds(self) -> tuple[int, ...]:
        """The seeds every subnet is trained alone with."""
        return self.seeds or (self.seed,)

    @classmethod
    def from_config(cls, cfg: DictConfig | Mapping[str, Any]) -> RankSettings:
        try:
            data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
        except OmegaConfBaseException as exc:
            raise RankError(str(exc).splitlines()[0]) from None
        data = {k: v for k, v in dict(data).items() if k not in ("debug", "hydra")}  # type: ignore[arg-type]
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise RankError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        if not data.get("supernet"):
            raise RankError(
                "no supernet checkpoint given; pass supernet=<path to supernet.pt> "
                "(train one with `python -m supernet.train`)"
            )
        train = data.get("train") or {}
        if not isinstance(train, Mapping):
            raise RankError(
                f"train must be a mapping of recipe options, got {train!r}; "
                "pass train.<option>=<value>"
            )
        bad = sorted(set(train) & set(SUBNET_ONLY))
        if any(train[k] is not None for k in bad):
            raise RankError(
                f"train.{bad[0]} is a supernet training option and a subnet trains alone here; "
                f"leave train.{bad[0]} out"
            )
        unknown_train = sorted(set(train) - {f.name for f in dataclasses.fields(TrainConfig)})
        if unknown_train:
            raise RankError(
                f"unknown recipe option(s) {', '.join('train.' + u for u in unknown_train)}; "
                "python -m search.rank --help lists the train.* options"
            )
        device = data.get("device", "auto")
        if not isinstance(device, str) or not device:
            raise RankError(
                f"device must be auto, cpu, cuda, cuda:N or mps, got {quoted(device)}; pass "
                "device=auto"
            )
        if device != "auto":
            check_device(device, "device")
        scratch = data.get("scratch_dir")
        scratch_dir = Path(str(scratch)).expanduser() if scratch else None
        if scratch_dir is not None and scratch_dir.exists() and not scratch_dir.is_dir():
            raise RankError(
                f"scratch_dir={scratch} is a file, not a directory; give a directory for the "
                "stand-alone runs (or leave scratch_dir out: <run dir>/scratch)"
            )
        seed = data.get("seed", 0)
        problem = seed_problem("seed", seed)
        if problem:
            raise RankError(problem)
        for key in ("finetune", "png"):
            if not isinstance(data.get(key, True), bool):
                raise RankError(
                    f"{key} must be true or false, got {data[key]!r}; "
                    f"pass {key}=true or {key}=false"
                )
        from .band import Band  # here: band.py raises RankError, defined above
        from .proxies import DEFAULT_PROXIES, PROXIES

        band = Band.from_config(data.get("band"))
        seeds = _seeds(data.get("seeds"))
        proxies = data.get("proxies", list(DEFAULT_PROXIES))
        if proxies is None:
            proxies = []
        if isinstance(proxies, str) or not isinstance(proxies, (list, tuple)):
            raise RankError(
                f"proxies must be a list like [{','.join(DEFAULT_PROXIES)}] (or []), "
                f"got {proxies!r}; pass proxies=[{','.join(DEFAULT_PROXIES)}]"
            )
        unknown_proxies = [p for p in proxies if p not in PROXIES]
        if unknown_proxies or len(set(proxies)) != len(proxies):
            raise RankError(
                f"proxies must name each of {', '.join(PROXIES)} at most once, got {proxies!r}; "
                f"pass a list of them, like proxies=[{','.join(DEFAULT_PROXIES)}]"
            )
        profile = data.get("latency_profile")
        return cls(
            supernet=Path(str(data["supernet"])).expanduser(),
            k=_int("k", data.get("k", 12), 3),
            seed=seed,
            pool_size=_int("pool_size", data.get("pool_size", 4096), 1, MAX_POOL_SIZE),
            finetune=data.get("finetune", True),
            scratch_dir=scratch_dir,
            n_jobs=_n_jobs(data.get("n_jobs", 1)),
            threads=check_threads("threads", _int("threads", data.get("threads", 1), 1)) or 1,
            device=device,
            png=data.get("png", True),
            progress=_progress(data.get("progress", "auto")),
            train={k: v for k, v in train.items() if v is not None},
            band=band,
            seeds=seeds,
            proxies=tuple(proxies),
            proxy_batches=_int("proxy_batches", data.get("proxy_batches", 3), 1),
            proxy_batch_size=_int("proxy_batch_size", data.get("proxy_batch_size", 128), 2),
            latency_profile=str(profile) if profile else None,
            latency_device=_latency_device(data.get("latency_device", "cpu")),
            latency_batch_size=_int("latency_batch_size", data.get("latency_batch_size", 1), 1),
            latency_threads=_latency_threads(data.get("latency_threads")),
        )


def _n_jobs(value: Any) -> int:
    """Training processes at once: each needs a core of its own (CPU) or shares the GPU."""
    n = _int("n_jobs", value, 1)
    cores = cpu_cores()
    if n > cores:
        raise RankError(
            f"n_jobs={n} is more than the {cores} CPU core(s) this process may use; each "
            f"training process needs one: pass n_jobs={cores} or fewer"
        )
    return n


def _latency_device(value: Any) -> str:
    """The device a latency profile was calibrated on: checked for its form only (a profile of
    a GPU can predict on a machine without one)."""
    try:
        return latency_device_option("latency_device", value)
    except LatencyError as exc:
        raise RankError(str(exc)) from None


def _latency_threads(value: Any) -> int | None:
    if value is None:
        return None
    return check_threads("latency_threads", _int("latency_threads", value, 1))


def _progress(value: Any) -> str:
    try:
        return progress_mode(value)
    except UserError as exc:
        raise RankError(str(exc)) from None


def _seeds(value: Any) -> tuple[int, ...]:
    """``None`` (the run's ``seed``) or a list of distinct integers from 0 to ``MAX_SEED``."""
    if value is None:
        return ()
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEED for v in value
        )
        and len(set(value)) == len(value)
    )
    if not ok:
        raise RankError(
            f"seeds must be a list of distinct non-negative integers, got {value!r}; pass "
            f"seeds=[0,1,2] (each at most {MAX_SEED}; seeds=null for [seed])"
        )
    return tuple(value)


def recipe(supernet_train: Mapping[str, Any], overrides: Mapping[str, Any]) -> TrainConfig:
    """The stand-alone recipe: the supernet's training config with ``overrides`` on top.

    The supernet-only options (sampling rule, distillation) take their defaults: they do nothing
    for one subnet, and so stand-alone runs of the same subnet from supernets trained with
    different rules are the same run. A checkpoint without a recorded recipe falls back to
    :class:`TrainConfig`'s defaults.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)} - set(SUBNET_ONLY)
    values = {k: v for k, v in dict(supernet_train).items() if k in known}
    values.update(overrides)
    try:
        return TrainConfig.from_dict(values, min_epochs=1)
    except ConfigError as exc:
        raise RankError(f"stand-alone recipe: {exc}") from None
