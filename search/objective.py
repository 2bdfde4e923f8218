"""One trial: suggest a subnet define-by-run, price it, check the budget, evaluate if feasible.

The subnet's parameters are its family's encoding (``supernet/<family>/codec.py``; for the ViT
family ``depth``, ``embed_dim``, then ``num_heads_<i>`` and ``mlp_ratio_<i>`` for the active
layers ``i < depth`` only). The subnet, its costs and its accuracy are also stored as user
attributes, so a trial reads back without this module and the dashboard shows them.

A subnet evaluated before (by any worker) is not evaluated again: inherited-weight accuracy is
deterministic, so the trial takes the earlier result and records ``duplicate_of``.

An infeasible subnet is never evaluated: its constraints say by how much it misses the budget,
its user attribute ``val_acc`` is None, and it reports the worst accuracy (0.0) as objective value,
which Optuna's constraint-aware samplers (NSGA-II, TPE, GP) rank below every feasible trial, and
optuna-dashboard shows as infeasible (the constraints are stored in the form it reads, see
:func:`search.optuna_adapter.set_constraints`).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from supernet import Space, Subnet, Supernet, family_of
from supernet.common.errors import UserError
from supernet.data import build_data
from supernet.evaluation import accuracy, materialize

from .budget import Budget
from .continuation import RUN_ATTR, SURPLUS_ATTR, claimed_by
from .costs import CostModel
from .latency import LatencyProfile
from .optuna_adapter import set_constraints

__all__ = [
    "INFEASIBLE_VALUE",
    "Objective",
    "ValData",
    "load_val_data",
    "subnet_from_params",
    "subnet_params",
    "suggest_subnet",
    "worker_name",
]


def worker_name(pid: int | None = None) -> str:
    """``host:pid`` of a worker process (this one by default), as trials record it."""
    return f"{socket.gethostname()}:{os.getpid() if pid is None else pid}"


#: Which process runs a trial (``host:pid``), stored with it as soon as it starts.
WORKER = worker_name()

#: The accuracy objective reported for an infeasible (never evaluated) subnet.
INFEASIBLE_VALUE = 0.0


def suggest_subnet(trial: optuna.trial.BaseTrial, space: Space) -> Subnet:
    """Define-by-run: the subnet of ``space`` the trial's suggestions choose (its family's
    encoding)."""
    return family_of(space).suggest(trial, space)


def subnet_params(subnet: Subnet) -> dict[str, Any]:
    """The trial parameters that :func:`suggest_subnet` gives for ``subnet`` (for enqueueing)."""
    return family_of(subnet).to_params(subnet)


def subnet_from_params(params: Mapping[str, Any], family: Space | str = "vit") -> Subnet | None:
    """The subnet of ``family`` (a space, or a family's name) a trial's parameters describe, or
    None if they are incomplete."""
    return family_of(family).from_params(params)


@dataclass(frozen=True)
class ValData:
    """Validation images and labels held in memory for every trial of a worker."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def load_val_data(data_config: Mapping[str, Any], space: Space, val_size: int | None) -> ValData:
    """The checkpoint's validation split, in memory; ``val_size`` keeps its first images (the
    split is a seeded shuffle, so they are a fixed random sample). Never the test split."""
    splits = build_data(data_config)
    splits.check_fits(space)
    images, labels = materialize(splits.val)
    if val_size is not None:
        if val_size > len(labels):
            raise UserError(
                f"search.val_size={val_size} is larger than the validation split "
                f"({len(labels)} images); use at most {len(labels)} or null for all"
            )
        images, labels = images[:val_size], labels[:val_size]
    return ValData(images.contiguous(), labels.contiguous())


class Objective:
    """The Optuna objective: ``objective(trial) -> val_acc`` or ``(val_acc, cost)``.

    ``objectives`` is ``["val_acc"]`` or ``["val_acc", <cost>]`` with a cost of
    :data:`~search.costs.METRICS` (minimised).
    """

    def __init__(
        self,
        net: Supernet,
        data: ValData,
        budget: Budget,
        costs: CostModel,
        objectives: Sequence[str] = ("val_acc",),
        batch_size: int = 1000,
        measure_latency: LatencyProfile | None = None,
        run_id: str | None = None,
        run_total: int | None = None,
    ) -> None:
        self.net = net.eval()
        self.run_id = run_id  # the search run's id, stored with each trial
        self.run_total = run_total  # the run's n_trials: a trial beyond them is not run
        # Wraps each evaluation: the only part of a trial that Ctrl-C may cut short (see
        # search.workers: a storage write interrupted half-way leaves a mess).
        self.interruptible: Callable[[], AbstractContextManager[Any]] = nullcontext
        self.space = net.space
        self.data = data
        self.budget = budget
        self.costs = costs
        self.objectives = tuple(objectives)
        self.batch_size = batch_size
        self.measure_latency = measure_latency
        self.evaluations = 0
        self._known: dict[Subnet, tuple[int, float]] = {}
        self._scanned: set[int] = set()

    def known_accuracy(self, study: optuna.Study, subnet: Subnet) -> tuple[int, float] | None:
        """``(trial number, val_acc)`` of an earlier evaluation of ``subnet`` in the study, by
        any worker. Inherited-weight accuracy is deterministic, so it is not evaluated again."""
        if subnet not in self._known:
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
                if t.number in self._scanned:
                    continue
                self._scanned.add(t.number)
                acc = t.user_attrs.get("val_acc")
                other = subnet_from_params(t.params, self.space)
                if acc is not None and other is not None and "duplicate_of" not in t.user_attrs:
                    self._known.setdefault(other, (t.number, float(acc)))
        return self._known.get(subnet)

    def evaluate(self, subnet: Subnet) -> float:
        """Inherited-weight top-1 accuracy on the validation data (batched, inference mode)."""
        self.evaluations += 1
        return accuracy(self.net, self.data.images, self.data.labels, subnet, self.batch_size)

    def _surplus(self, trial: optuna.trial.BaseTrial) -> bool:
        """Whether the run had all its trials before this one (others ran some meanwhile)."""
        study = getattr(trial, "study", None)
        if self.run_total is None or self.run_id is None or study is None:
            return False
        return claimed_by(study, self.run_id, before=trial.number) >= self.run_total

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, ...]:
        # First, so that a trial left RUNNING by a killed worker can be traced to it.
        trial.set_user_attr("worker", WORKER)
        if self.run_id is not None:
            trial.set_user_attr(RUN_ATTR, self.run_id)
        if self._surplus(trial):
            trial.set_user_attr(RUN_ATTR, None)
            trial.set_user_attr(SURPLUS_ATTR, self.run_id)
            trial.study.stop()  # type: ignore[attr-defined]
            raise optuna.TrialPruned(f"the run already has its {self.run_total} trials")
        subnet = suggest_subnet(trial, self.space)
        cost = self.costs(subnet)
        violations = self.budget.violations(cost)
        if violations:
            set_constraints(trial, violations)  # the form Optuna and optuna-dashboard both read
        feasible = all(v <= 0 for v in violations.values())
        val_acc: float | None = None
        eval_s = 0.0
        duplicate_of = None
        if feasible:
            study = getattr(trial, "study", None)  # a FixedTrial has none
            known = self.known_accuracy(study, subnet) if study is not None else None
            if known is not None:
                duplicate_of, val_acc = known
            else:
                start = time.perf_counter()
                with self.interruptible():
                    val_acc = self.evaluate(subnet)
                eval_s = time.perf_counter() - start
                self._known[subnet] = (trial.number, val_acc)
            if self.measure_latency is not None:
                model = self.net.extract(subnet)
                cost["measured_latency_ms"] = self.measure_latency.measure(model).median_ms
        attrs = {
            "worker": WORKER,
            "arch": str(subnet),
            "subnet": subnet.to_dict(),
            **{k: v for k, v in cost.items() if v == v},  # NaN latency is left out
            "feasible": feasible,
            "val_acc": val_acc,
            "eval_s": eval_s,
        }
        if duplicate_of is not None:
            attrs["duplicate_of"] = duplicate_of
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        acc = val_acc if val_acc is not None else INFEASIBLE_VALUE
        values = (acc, *(cost[name] for name in self.objectives[1:]))
        return values[0] if len(values) == 1 else values
