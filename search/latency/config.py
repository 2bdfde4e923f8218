"""The options of ``python -m search.latency``: its Hydra structured config, each default and
its help defined once (``conf/latency.yaml`` lists :class:`LatencyConfig` first; its ``space``
group picks the search space). ``python -m search.latency --help`` lists them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from supernet.common.config import option, register

__all__ = ["LatencyConfig"]


@dataclass
class LatencyConfig:
    command: str = option("calibrate", "set by the first word of the command line")
    supernet: str | None = option(None, "a supernet.pt: take the space from it instead of space=")
    space: Any = option(None, "the search space: a preset of conf/space/ (space=<name>)")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    batch_size: int = option(1, "images per forward")
    threads: int | None = option(
        None, "CPU intra-op threads (null: torch's default); part of the profile's key"
    )
    n_samples: int = option(32, "calibrate: the designed sample the predictor is fitted on")
    n_holdout: int = option(16, "calibrate: uniformly random held-out subnets it is scored on")
    warmup: int = option(2, "untimed forwards before each subnet's timed ones")
    repeats: int = option(5, "timed forwards per subnet per round (a round's latency: median)")
    rounds: int = option(3, "passes over all subnets in a fresh order; a subnet's: its lowest")
    seed: int = option(0, "which subnets are sampled")
    steady_allocator: bool = option(
        True, "fix glibc's malloc thresholds so forwards don't page-fault"
    )
    clock: str = option(
        "wall", "wall, or cpu: the thread's CPU time (threads=1 on cpu only), steadier"
    )
    subnet: str = option(
        "largest",
        "measure: smallest, middle, largest, an export directory or the path of a subnet.yaml",
    )
    out: str | None = option(None, "output directory (null: the Hydra run directory)")
    overwrite: bool = option(False, "replace the results an earlier run left in out=")
    profile_dir: str | None = option(
        "latency_profiles", "calibrate files a copy of the profile here (null: don't)"
    )
    progress: Any = option(
        "auto", "auto: a bar on a terminal, else a log line a minute | true (a bar) | false"
    )
    debug: bool = option(False, "show the traceback of a user error instead of one line")


register("latency_schema", LatencyConfig)  # what conf/latency.yaml's defaults list first
