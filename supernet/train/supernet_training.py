"""Train a weight-sharing supernet: ``train_supernet(config) -> SupernetResult``.

Writes ``<run_dir>/supernet.pt`` after every epoch (see :mod:`supernet.checkpoint`; besides the
weights and space it holds ``data`` and its ``preprocessing``, ``train``, ``epoch``, ``seed``,
optimizer, scheduler, scaler and generator states, the metrics so far and the reference subnets)
and ``<run_dir>/metrics.csv`` with the validation accuracy of the smallest, middle and largest
subnet per epoch.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import check_same_space, checkpoint_space, load_checkpoint, save_checkpoint
from ..common.atomic import make_dir
from ..common.resources import check_memory
from ..common.rundir import claim_run_dir
from ..data import DataSplits, build_data
from ..evaluation import EvalSet, accuracies
from ..model import Supernet, weight_count
from ..space import Space
from .config import RunConfig, TrainConfig
from .distributed import DistEnv
from .loop import Amp, Hooks, fit
from .resume import check_same_settings, resume_path
from .sampling import SubnetSampler, reference_subnets

__all__ = ["CHECKPOINT", "SupernetResult", "SupernetTask", "seed_everything", "train_supernet"]

log = logging.getLogger(__name__)

CHECKPOINT = "supernet.pt"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class SupernetResult:
    run_dir: Path
    checkpoint: Path
    epochs: int
    val_acc: dict[str, float]  # smallest / middle / largest after the last epoch
    metrics: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    wall_s: float = 0.0  # training + validation time over all epochs (resumes included)
    resumed_from: int | None = None  # the epoch a resumed run started from


class SupernetTask:
    """Supernet training steps (uniform or sandwich) and the three reference accuracies."""

    def __init__(
        self,
        net: Supernet,
        config: TrainConfig,
        sampler: SubnetSampler,
        val: EvalSet | None,
        data: Mapping[str, Any],
    ) -> None:
        self.model = net
        self.config = config
        self.sampler = sampler
        self.val = val
        self.data = dict(data)
        self.references = reference_subnets(net.space)
        self._losses: dict[str, torch.Tensor] = {}

    def train_step(self, x: torch.Tensor, y: torch.Tensor, amp: Amp) -> torch.Tensor:
        subnets = self.sampler.step()
        self._losses = {}
        distill = self.config.distill and self.config.strategy == "sandwich" and len(subnets) > 1
        teacher: torch.Tensor | None = None
        reported = torch.zeros(())
        for i, subnet in enumerate(subnets):
            with amp.autocast():
                logits = self.model(x, subnet)
            logits = logits.float()
            if teacher is None:
                loss = F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)
            else:  # in-place distillation: cross-entropy against the teacher's soft labels
                loss = -(teacher * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
            self._losses.setdefault(str(subnet), loss.detach())
            if i == 0:
                reported = loss.detach()
                if distill:
                    teacher = logits.detach().softmax(dim=-1)
            # Averaged over the step's subnets, so the learning rate and the clipping threshold
            # mean the same for uniform and sandwich sampling.
            amp.backward(loss / len(subnets))
        return reported

    def evaluate(self) -> dict[str, float]:
        assert self.val is not None, "validation runs on rank 0 only"
        acc = accuracies(self.model, self.val, self.references)
        return {f"val_acc_{name}": value for name, value in acc.items()}

    def step_losses(self) -> dict[str, torch.Tensor]:
        return self._losses

    def state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.sampler.load_state(state["sampler"])

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        save_checkpoint(
            path,
            self.model,
            data=self.data,
            train=self.config.to_dict(),
            reference_subnets={k: s.to_dict() for k, s in self.references.items()},
            **extra,
        )


def _preprocessing(splits: DataSplits) -> dict[str, Any] | None:
    return None if splits.preprocessing is None else splits.preprocessing.to_dict()


def _as_config(config: RunConfig | Mapping[str, Any]) -> RunConfig:
    return config if isinstance(config, RunConfig) else RunConfig.from_dict(config)


def train_supernet(
    config: RunConfig | Mapping[str, Any], hooks: Hooks | None = None
) -> SupernetResult:
    """Train (or, with ``resume``, continue training) a supernet; see the module docstring.

    Under ``torchrun`` every process calls this; rank 0 alone writes, and every rank returns the
    same result.
    """
    config = _as_config(config)
    if config.mode != "supernet":
        raise ValueError(f"train_supernet is for mode=supernet, got mode={config.mode}")
    space = config.space
    assert isinstance(space, Space)
    with DistEnv.setup(config.device, config.threads) as env:
        return _train(config, space, env, hooks)


def _train(config: RunConfig, space: Space, env: DistEnv, hooks: Hooks | None) -> SupernetResult:
    run_dir = Path(env.broadcast_object(str(config.run_dir)))
    claim_run_dir(run_dir, "supernet")
    train = config.train
    count = weight_count(space)
    check_memory(
        16 * count,
        f"training this supernet ({count:,} weights, each with its gradient and AdamW's two "
        "moments, 16 bytes in all)",
        "choose smaller space.* choices (embed_dim, depth, num_heads, mlp_ratio)",
    )
    path = resume_path(config.resume, run_dir, CHECKPOINT)
    payload = None
    if path is not None:
        payload = load_checkpoint(path)
        check_same_space(checkpoint_space(payload, path), space, path)
        check_same_settings(payload, path, data=config.data, train=train, seed=config.seed)
    splits = build_data(config.data)
    splits.check_fits(space)

    seed_everything(config.seed)  # the same initial weights on every rank
    net = Supernet(space, drop_path_rate=train.drop_path)
    if payload is not None:
        net.load_state_dict(payload["model"])
    net.to(env.device)
    env.broadcast_module(net)
    torch.manual_seed(config.seed + 1 + env.rank)  # stochastic depth differs between ranks

    val = EvalSet(splits.val, train.eval_batch_size, train.num_workers) if env.is_main else None
    sampler = SubnetSampler(space, train.strategy, train.num_random, config.seed)
    data_dict = dataclasses.asdict(config.data)
    task = SupernetTask(net, train, sampler, val, data_dict)
    if env.is_main:
        make_dir(run_dir)
        start = int(payload["epoch"]) if payload is not None else 0
        log.info(
            "training a %s supernet (%s) on %s: %d train / %d val images, %s sampling, %d "
            "epoch(s)%s, %d process(es) on %s",
            space.name or "custom",
            f"{space.smallest()} … {space.largest()}",
            splits.name,
            len(splits.train),  # type: ignore[arg-type]
            len(splits.val),  # type: ignore[arg-type]
            train.strategy,
            train.epochs,
            f" from epoch {start}" if payload is not None else "",
            env.world_size,
            env.device,
        )
    fitted = fit(
        task,
        config=train,
        env=env,
        splits=splits,
        seed=config.seed,
        run_dir=run_dir,
        checkpoint_name=CHECKPOINT,
        resume=payload,
        hooks=hooks,
        # what exports of its subnets record as their preprocessing
        extra={"mode": "supernet", "preprocessing": _preprocessing(splits)},
    )
    rows = env.broadcast_object(fitted.rows)  # rank 0 evaluated; every rank returns the result
    last = rows[-1]
    val_acc = {name: float(last[f"val_acc_{name}"]) for name in task.references}
    if env.is_main:
        log.info(
            "saved %s: val acc smallest %.4f, middle %.4f, largest %.4f after %d epoch(s), %.1fs",
            run_dir / CHECKPOINT,
            val_acc["smallest"],
            val_acc["middle"],
            val_acc["largest"],
            last["epoch"],
            last["wall_s"],
        )
        if fitted.digest is not None:
            log.info("weights sha256 %s identical on %d ranks", fitted.digest, env.world_size)
    return SupernetResult(
        run_dir=run_dir,
        checkpoint=run_dir / CHECKPOINT,
        epochs=int(last["epoch"]),
        val_acc=val_acc,
        metrics=rows,
        wall_s=float(last["wall_s"]),
        resumed_from=int(payload["epoch"]) if payload is not None else None,
    )
