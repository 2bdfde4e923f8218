"""Typed, validated configuration of a training run.

The Hydra app composes ``conf/train.yaml`` (groups ``data``, ``space``, ``train``); the Python API
takes the same keys as a plain mapping. Either way the values land in these frozen dataclasses,
and every bad value is reported in one message naming the option and what it accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..common.config import option, register
from ..common.console import progress_mode
from ..common.errors import UserError, quoted
from ..common.resources import check_threads
from ..common.validate import is_int, is_number
from ..data import DataConfig
from ..space import Space, SpaceError
from .rng import seed_problem

__all__ = [
    "DISPLAY_ONLY",
    "MODES",
    "PRECISIONS",
    "STRATEGIES",
    "ConfigError",
    "RunConfig",
    "TrainConfig",
]

STRATEGIES = ("uniform", "sandwich")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: Training options that change what is shown, not what is trained (a resume may change them).
DISPLAY_ONLY = frozenset({"progress"})
MODES = ("supernet", "finetune", "scratch")


_FLOATS = (
    "lr",
    "min_lr",
    "weight_decay",
    "warmup_epochs",
    "label_smoothing",
    "grad_clip",
    "drop_path",
)


class ConfigError(UserError):
    """A training option with a bad value (the message names it and what it accepts)."""


def _unknown(given: Mapping[str, Any], cls: type, prefix: str) -> None:
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(prefix + u for u in unknown)}; known: {', '.join(names)}"
        )


@dataclass
class TrainConfig:
    """The training recipe, shared by supernet training and single-subnet fine-tune / scratch.

    ``batch_size`` is the global batch: with several processes each takes an equal share, so a
    recipe means the same thing on one CPU and on eight GPUs. These are the defaults of
    ``python -m supernet.train`` too (the ``train`` group's presets say only what they change).
    """

    strategy: str = option("sandwich", "uniform: one random subnet per step; sandwich: BigNAS")
    epochs: int = option(60, "epochs to train")
    batch_size: int = option(32, "global batch: split evenly over torchrun processes")
    lr: float = option(3e-3, "AdamW peak learning rate, after the warmup")
    min_lr: float = option(1e-5, "where the cosine ends")
    weight_decay: float = option(0.05, "not on biases, norms, CLS token, positions, bias tables")
    warmup_epochs: float = option(2.0, "linear warmup to lr")
    label_smoothing: float = option(0.1, "in [0, 1)")
    grad_clip: float | None = option(5.0, "max global gradient norm; null: no clipping")
    num_random: int = option(2, "sandwich: random subnets per step beside largest and smallest")
    distill: bool = option(False, "sandwich: the largest subnet's soft labels teach the others")
    lazy_updates: bool = option(False, "AdamW leaves entries with a zero gradient alone")
    drop_path: float = option(0.0, "stochastic depth rate of the deepest block")
    precision: str = option("auto", "auto: bf16 (else fp16) autocast on CUDA, fp32 on CPU | ...")
    num_workers: int = option(0, "DataLoader workers (imagefolder wants several)")
    eval_batch_size: int = option(512, "evaluation batch")
    progress: Any = option(
        "auto",
        "progress within an epoch: auto (a bar on a terminal; elsewhere a log line a minute) "
        "| true (the bar) | false",
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], min_epochs: int = 1) -> TrainConfig:
        """Build and validate; ``min_epochs`` is 0 for fine-tuning (inherited accuracy only)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"train must be a mapping of options, got {type(data).__name__}")
        _unknown(data, cls, "train.")
        values = dict(data)
        for name in _FLOATS:
            if is_int(values.get(name)):
                values[name] = float(values[name])  # `train.lr=1` means 1.0
        config = cls(**values)
        config.check(min_epochs)
        return config

    def check(self, min_epochs: int = 1) -> None:
        """Raise :class:`ConfigError` listing every bad value."""
        problems: list[str] = []

        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                problems.append(f"train.{name} must be {what}, got {getattr(self, name)!r}")

        if self.strategy not in STRATEGIES:
            problems.append(
                f"train.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        need(
            is_int(self.epochs) and self.epochs >= min_epochs,
            "epochs",
            f"an integer ≥ {min_epochs}",
        )
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "a positive integer")
        need(is_number(self.lr) and self.lr > 0, "lr", "a positive number")
        need(is_number(self.min_lr) and self.min_lr >= 0, "min_lr", "a number ≥ 0")
        need(is_number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "≥ 0")
        need(is_number(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", "≥ 0")
        need(
            is_number(self.label_smoothing) and 0 <= self.label_smoothing < 1,
            "label_smoothing",
            "in [0, 1)",
        )
        need(
            self.grad_clip is None or (is_number(self.grad_clip) and self.grad_clip > 0),
            "grad_clip",
            "a positive number or null",
        )
        need(is_int(self.num_random) and self.num_random >= 0, "num_random", "an integer ≥ 0")
        need(isinstance(self.distill, bool), "distill", "true or false")
        need(isinstance(self.lazy_updates, bool), "lazy_updates", "true or false")
        need(is_number(self.drop_path) and 0 <= self.drop_path < 1, "drop_path", "in [0, 1)")
        if self.precision not in PRECISIONS:
            problems.append(
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        need(is_int(self.num_workers) and self.num_workers >= 0, "num_workers", "an integer ≥ 0")
        need(
            is_int(self.eval_batch_size) and self.eval_batch_size >= 1,
            "eval_batch_size",
            "a positive integer",
        )
        try:
            progress_mode(self.progress, "train.progress")
        except UserError as exc:
            problems.append(str(exc).split(";")[0])
        if not problems and self.min_lr > self.lr:
            problems.append(f"train.min_lr ({self.min_lr}) is above train.lr ({self.lr})")
        if problems:
            raise ConfigError(
                "; ".join(problems) + "; pass values in those ranges (`--help` lists the options "
                "and their defaults)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: TrainConfig) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(other, f.name)]


def _space(value: object) -> Space | None:
    if value is None or isinstance(value, Space):
        return value
    if isinstance(value, str):
        return Space.preset(value)
    if isinstance(value, Mapping):
        try:
            return Space.from_dict(value)
        except SpaceError as exc:
            raise ConfigError(
                f"invalid search space: {'; '.join(exc.problems)}; fix those space.* overrides, "
                "or choose a preset with space=<name> (conf/space/)"
            ) from None
    raise ConfigError(f"space must be a preset name or a mapping of fields, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """One run: what to train (``mode``), on which data and space, with which recipe, where.

    ``space`` may be ``None`` in the subnet modes: the space then comes with the subnet's export,
    the supernet checkpoint, or (for a bare subnet YAML) must be given.
    """

    run_dir: Path
    data: DataConfig
    space: Space | None
    train: TrainConfig
    mode: str = "supernet"
    # finetune / scratch: an export dir, a subnet YAML, or smallest | middle | largest
    subnet: str | None = None
    supernet: str | None = None  # finetune: take the subnet's weights from this checkpoint
    resume: bool | str = False  # true | auto (if there is one) | a checkpoint path
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # CPU threads of torch's intra-op pool; None leaves it as it is
    onnx: Any = False  # finetune / scratch: also write <run_dir>/subnet/model.onnx

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], run_dir: str | Path | None = None) -> RunConfig:
        """Build from the keys of ``conf/train.yaml`` (``debug`` is ignored; ``hydra`` too)."""
        values = {k: v for k, v in dict(data).items() if k not in ("debug", "hydra")}
        if run_dir is not None:
            values["run_dir"] = run_dir
        _unknown(values, cls, "")
        if values.get("run_dir") is None:
            raise ConfigError("run_dir is required: the directory the run writes into")
        values["run_dir"] = Path(values["run_dir"])
        data_cfg = values.get("data", {})
        values["data"] = (
            data_cfg if isinstance(data_cfg, DataConfig) else DataConfig.from_dict(data_cfg or {})
        )
        values["space"] = _space(values.get("space"))
        train_cfg = values.get("train", {})
        if not isinstance(train_cfg, TrainConfig):
            min_epochs = 0 if values.get("mode") == "finetune" else 1
            train_cfg = TrainConfig.from_dict(train_cfg, min_epochs)
        values["train"] = train_cfg
        for key in ("subnet", "supernet"):
            if values.get(key) is not None:
                values[key] = str(values[key])
        config = cls(**values)
        config.check()
        return config

    def check(self) -> None:
        problems: list[str] = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        elif self.mode == "supernet":
            if self.space is None:
                problems.append("mode=supernet needs a search space (space=<preset>)")
            if self.subnet is not None:
                problems.append("subnet= is for mode=finetune or mode=scratch, not mode=supernet")
            if self.supernet is not None:
                problems.append("supernet= is for mode=finetune, not mode=supernet")
            if str(self.onnx).lower() == "true":
                problems.append(
                    "onnx=true is for mode=finetune or mode=scratch: a supernet is not one model; "
                    "export a subnet with python -m search.export <search run> onnx=true"
                )
        else:
            if self.subnet is None:
                problems.append(
                    f"mode={self.mode} needs subnet=<export dir, subnet YAML, or "
                    "smallest|middle|largest>"
                )
            if self.mode == "scratch" and self.supernet is not None:
                problems.append("supernet= is for mode=finetune; mode=scratch starts from random")
        if not (isinstance(self.resume, bool) or (isinstance(self.resume, str) and self.resume)):
            problems.append(
                f"resume must be true, false, auto or a checkpoint path, got {self.resume!r}"
            )
        seed = seed_problem("seed", self.seed)
        if seed:
            problems.append(seed)
        if self.threads is not None and not (is_int(self.threads) and self.threads >= 1):
            problems.append(
                f"threads must be a positive integer or null, got {quoted(self.threads)}; pass "
                "threads=1 (small models) or null (one per core)"
            )
        if not isinstance(self.device, str) or not self.device:
            problems.append(f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}")
        if str(self.onnx).lower() not in ("auto", "true", "false"):
            problems.append(f"onnx must be auto, true or false, got {quoted(self.onnx)}")
        if problems:
            raise ConfigError(
                "; ".join(problems) + "; fix those options (python -m supernet.train --help "
                "lists them with their defaults)"
            )
        check_threads("threads", self.threads)
        # Fine-tuning for zero epochs is how one measures inherited accuracy alone.
        self.train.check(min_epochs=0 if self.mode == "finetune" else 1)


@dataclass
class TrainAppConfig:
    """The options of ``python -m supernet.train`` (``conf/train.yaml`` lists this schema first;
    its groups ``data``, ``space`` and ``train`` hold presets). :class:`RunConfig` is what the
    code receives."""

    mode: str = option("supernet", "supernet | finetune | scratch")
    subnet: str | None = option(
        None, "finetune/scratch: an export dir, a subnet YAML, or smallest | middle | largest"
    )
    supernet: str | None = option(None, "finetune: take the subnet's weights from this checkpoint")
    resume: Any = option(
        False, "true: continue hydra.run.dir's checkpoint; auto: if there is one; or a path"
    )
    seed: int = option(0, "seed of the weights, the data order and the subnet draws")
    device: str = option("auto", "auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:N | mps")
    threads: int | None = option(
        1, "CPU threads per process (small models run fastest on one); null: one per core"
    )
    onnx: Any = option(
        False,
        "finetune/scratch: true: also export subnet/model.onnx, checked against PyTorch; auto: "
        "when onnx and onnxruntime are installed",
    )
    debug: bool = option(False, "show the traceback of a user error instead of one line")
    data: DataConfig = option(DataConfig(), "")
    space: Any = option(None, "the search space: a preset of conf/space/ (space=<name>)")
    train: TrainConfig = option(TrainConfig(), "")


register("train_schema", TrainAppConfig)  # what conf/train.yaml's defaults list first
