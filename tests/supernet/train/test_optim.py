from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from supernet import SearchSpace, SubnetConfig, Supernet
from supernet.train import TrainConfig
from supernet.train.optim import build_optimizer, lazy_step, warmup_cosine


def _loss(net: Supernet, subnet: SubnetConfig) -> torch.Tensor:
    x = torch.randn(4, net.space.in_chans, 8, 8)
    return F.cross_entropy(net(x, subnet), torch.tensor([0, 1, 2, 3]))


@pytest.mark.parametrize("lazy", [False, True])
def test_entries_outside_the_subnet(tiny_space: SearchSpace, lazy: bool) -> None:
    """Plain AdamW moves the entries a step's subnet does not use (weight decay and the
    momentum of earlier steps); the lazy update leaves them exactly as they were."""
    net = Supernet(tiny_space)
    optimizer = build_optimizer(net, TrainConfig(weight_decay=0.1, lr=0.01))
    _loss(net, tiny_space.largest()).backward()  # every entry gets a gradient and momentum
    optimizer.step()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    small = tiny_space.smallest()  # embed 8 of 12, depth 1 of 3, 1 head of 3
    optimizer.zero_grad(set_to_none=True)
    _loss(net, small).backward()
    if lazy:
        lazy_step(optimizer, optimizer.step)
    else:
        optimizer.step()
    hidden = small.mlp_hidden_dims()[0]
    fc1, old = net.blocks[0].fc1.weight, before["blocks.0.fc1.weight"]
    assert not torch.equal(fc1[:hidden, :8], old[:hidden, :8])  # the subnet's entries train
    assert torch.equal(fc1[hidden:], old[hidden:]) == lazy
    assert torch.equal(fc1[:, 8:], old[:, 8:]) == lazy
    assert torch.equal(net.patch_embed.weight[8:], before["patch_embed.weight"][8:]) == lazy
    # Blocks past the subnet's depth get no gradient (None): AdamW skips them either way.
    assert torch.equal(net.blocks[2].fc1.weight, before["blocks.2.fc1.weight"])


def test_lazy_keeps_moments_of_idle_entries() -> None:
    p = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.1)
    p.grad = torch.ones(4)
    optimizer.step()
    moments = {k: v.clone() for k, v in optimizer.state[p].items() if k != "step"}
    value = p.detach().clone()
    p.grad = torch.tensor([1.0, 0.0, 1.0, 0.0])
    lazy_step(optimizer, optimizer.step)
    for k, old in moments.items():
        assert torch.equal(optimizer.state[p][k][1::2], old[1::2]), k
        assert not torch.equal(optimizer.state[p][k][0::2], old[0::2]), k
    assert torch.equal(p[1::2], value[1::2]) and not torch.equal(p[0::2], value[0::2])


def test_no_decay_groups(tiny_space: SearchSpace) -> None:
    net = Supernet(tiny_space)
    optimizer = build_optimizer(net, TrainConfig(weight_decay=0.3))
    decay, no_decay = optimizer.param_groups
    names = {id(p): n for n, p in net.named_parameters()}
    assert decay["weight_decay"] == 0.3 and no_decay["weight_decay"] == 0.0
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "head.bias"} <= exempt
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(net.parameters()))


def test_warmup_cosine() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    config = TrainConfig(lr=1.0, min_lr=0.01, epochs=10, warmup_epochs=2)
    optimizer = torch.optim.AdamW([p], lr=config.lr)
    scheduler = warmup_cosine(optimizer, config, steps_per_epoch=5)
    lrs = []
    for _ in range(50):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear warmup
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))  # cosine decay
    assert lrs[-1] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 39 / 40)))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # ends at min_lr
