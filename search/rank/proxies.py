"""Cheap rankers to hold the supernet against: cost counts and zero-cost proxies.

Each proxy scores a subnet without training it; a higher score predicts a higher stand-alone
accuracy. ``python -m search.rank`` ranks the same subnets by each and reports Kendall τ and
Spearman ρ beside the supernet's, with each proxy's cost in seconds.

Cost counts (exact, from ``supernet.complexity`` and the subnet's config):

- ``params``, ``flops``: "bigger is better";
- ``depth``: the total number of blocks (``subnet.to_dict()["depth"]``, summed over stages when
  it is a per-stage list).

Zero-cost proxies, each computed on the subnet's standalone model at initialisation (the seed-``s``
weights that its stand-alone run with seed ``s`` starts from: the proxies' papers score untrained
networks, and they are the free alternative to training a supernet, so they must not borrow its
weights), on images of the supernet's data (its checkpoint's data config; the validation split,
a seeded sample of ``batches × batch_size`` images, no augmentation):

- ``naswot`` — Mellor, Turner, Storkey, Crowley, "Neural Architecture Search without Training",
  ICML 2021: ``log |K_H|`` with ``K_H[i, j]`` the number of units on which images i and j agree in
  sign at the input of every activation (``nn.GELU``/``nn.ReLU``); mean over the batches.
- ``synflow`` — Tanaka, Kunin, Yamins, Ganguli, "Pruning neural networks without any data by
  iteratively conserving synaptic flow", NeurIPS 2020, used as a NAS proxy by Abdelfattah et al.,
  "Zero-Cost Proxies for Lightweight NAS", ICLR 2021: with every weight replaced by its absolute
  value, in float64, ``R = sum(f(1))`` for an all-ones image; the score is
  ``Σ |θ ⊙ ∂R/∂θ|`` over the weights of every ``nn.Linear`` and ``nn.Conv2d``. Data-free by
  design: only the images' shape is used. Reported as ``log10`` (the raw sum spans orders of
  magnitude; the ranking is the same).
- ``dss`` — Zhou, Wang, Li, Zhang, Wang, Li, Pu, "Training-free Transformer Architecture Search",
  CVPR 2022 (TF-TAS), the DSS-indicator: synaptic diversity of the attention weights,
  ``Σ ||∂L/∂W||_nuc · ||W||_nuc`` over the ``nn.Linear`` weights inside modules named ``attn``,
  plus synaptic saliency of the MLP weights, ``Σ |W ⊙ ∂L/∂W|`` over those inside modules named
  ``mlp``; ``L`` the cross-entropy of one batch. Both the ViT and the Swin families name their
  blocks' parts so (timm's convention).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from supernet import Space, Subnet, complexity, family_of
from supernet.data import build_data
from supernet.evaluation import materialize

from .settings import RankError

__all__ = [
    "DEFAULT_PROXIES",
    "PROXIES",
    "Batches",
    "Proxy",
    "ProxyScores",
    "blocks",
    "init_model",
    "proxy_batches",
    "score_proxies",
]

Batches = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class Proxy:
    name: str
    kind: str  # "cost" (a count) or "zero-cost" (a score of the model at initialisation)
    source: str  # what it is / the paper
    score: Callable[[Space, Subnet, Batches, int], float]


def blocks(subnet: Subnet) -> int:
    """The total number of blocks: ``depth`` of ``subnet.to_dict()``, summed when per stage."""
    depth = subnet.to_dict().get("depth")
    if isinstance(depth, (list, tuple)):
        return int(sum(int(d) for d in depth))
    if isinstance(depth, int):
        return depth
    raise RankError(f"the depth proxy needs a depth in {subnet.family} subnets, got {depth!r}")


def init_model(space: Space, subnet: Subnet, seed: int) -> nn.Module:
    """The standalone model of ``subnet`` with the initial weights a stand-alone run with
    ``seed`` starts from (torch's global generator is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = family_of(space).build_model(space, subnet)
    return model.eval()


# -- the zero-cost proxies ---------------------------------------------------------------------
_ACTIVATIONS = (nn.GELU, nn.ReLU)


def naswot(space: Space, subnet: Subnet, batches: Batches, seed: int) -> float:
    model = init_model(space, subnet, seed)
    units = [m for m in model.modules() if isinstance(m, _ACTIVATIONS)]
    if not units:
        raise RankError(
            f"naswot needs nn.GELU or nn.ReLU modules in the {subnet.family} standalone model; "
            "drop it from proxies"
        )
    kernels: list[torch.Tensor] = []  # the current batch's K_H

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        code = (inputs[0] > 0).flatten(1).float()  # one row of unit codes per image
        kernels[-1].add_((code @ code.T + (1 - code) @ (1 - code).T).double())

    handles = [m.register_forward_hook(hook) for m in units]
    scores = []
    try:
        for x, _ in batches:
            kernels.append(torch.zeros(len(x), len(x), dtype=torch.float64))
            with torch.no_grad():
                model(x)
            sign, logdet = torch.linalg.slogdet(kernels[-1])
            scores.append(float(logdet) if sign > 0 else -math.inf)
    finally:
        for h in handles:
            h.remove()
    return float(np.mean(scores))


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def synflow(space: Space, subnet: Subnet, batches: Batches, seed: int) -> float:
    model = init_model(space, subnet, seed).double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    ones = torch.ones((1, *batches[0][0].shape[1:]), dtype=torch.float64)
    model(ones).sum().backward()
    with torch.no_grad():
        total = sum(float((w * w.grad).abs().sum()) for w in _weights(model) if w.grad is not None)
    return math.log10(total) if total > 0 else -math.inf


def dss(space: Space, subnet: Subnet, batches: Batches, seed: int) -> float:
    model = init_model(space, subnet, seed)
    parts: dict[str, list[torch.Tensor]] = {"attn": [], "mlp": []}
    seen: set[int] = set()
    for name, module in model.named_modules():
        part = next((p for p in parts if p in name.split(".")), None)
        if part is None:
            continue
        for sub in module.modules():
            if isinstance(sub, nn.Linear) and id(sub.weight) not in seen:
                seen.add(id(sub.weight))
                parts[part].append(sub.weight)
    if not parts["attn"] or not parts["mlp"]:
        raise RankError(
            f"dss needs modules named attn and mlp in the {subnet.family} standalone model; "
            "drop it from proxies"
        )
    x, y = batches[0]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    score = 0.0
    with torch.no_grad():
        for w in parts["attn"]:
            if w.grad is not None:
                nuc = torch.linalg.matrix_norm
                score += float(nuc(w.grad, "nuc") * nuc(w, "nuc"))
        for w in parts["mlp"]:
            if w.grad is not None:
                score += float((w * w.grad).abs().sum())
    return score


PROXIES: dict[str, Proxy] = {
    p.name: p
    for p in (
        Proxy("params", "cost", "parameter count", lambda sp, s, b, r: complexity.params(sp, s)),
        Proxy("flops", "cost", "FLOPs (2 x MACs)", lambda sp, s, b, r: complexity.flops(sp, s)),
        Proxy("depth", "cost", "total number of blocks", lambda sp, s, b, r: blocks(s)),
        Proxy("naswot", "zero-cost", "Mellor et al., ICML 2021 (NASWOT)", naswot),
        Proxy("synflow", "zero-cost", "Tanaka et al., NeurIPS 2020 (SynFlow), log10", synflow),
        Proxy("dss", "zero-cost", "Zhou et al., CVPR 2022 (TF-TAS DSS-indicator)", dss),
    )
}
DEFAULT_PROXIES = tuple(PROXIES)


def proxy_batches(
    data: Mapping[str, Any], space: Space, batches: int, batch_size: int, seed: int
) -> Batches:
    """``batches`` batches of ``batch_size`` images (fewer if the split is smaller): a seeded
    sample of the validation split of ``data``, without augmentation."""
    splits = build_data(data)
    splits.check_fits(space)
    n = len(splits.val)  # type: ignore[arg-type]
    take = min(n, batches * batch_size)
    order = np.random.default_rng(seed).permutation(n)[:take]
    x, y = materialize(Subset(splits.val, order.tolist()), batch_size)
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, take, batch_size)]


@dataclass
class ProxyScores:
    """``scores[name][i]`` and ``seconds[name][i]``: proxy ``name`` on subnet ``i``."""

    scores: dict[str, list[float]]
    seconds: dict[str, list[float]]
    data_s: float = 0.0  # loading the images, shared by the proxies that use them
    images: int = 0  # how many were loaded for them (the split may hold fewer than asked)


def score_proxies(
    space: Space,
    subnets: Sequence[Subnet],
    names: Sequence[str],
    batches: Batches,
    seed: int,
    threads: int = 1,
) -> ProxyScores:
    """Every proxy in ``names`` on every subnet, each timed (``threads`` torch threads)."""
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise RankError(f"unknown proxies {unknown}; the proxies are {', '.join(PROXIES)}")
    out = ProxyScores({n: [] for n in names}, {n: [] for n in names})
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for name in names:
            for subnet in subnets:
                start = time.perf_counter()
                value = float(PROXIES[name].score(space, subnet, batches, seed))
                out.seconds[name].append(time.perf_counter() - start)
                out.scores[name].append(value)
    finally:
        torch.set_num_threads(before)
    return out
