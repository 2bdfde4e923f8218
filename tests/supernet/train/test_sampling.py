from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from supernet import SearchSpace, Supernet
from supernet.train import SubnetSampler, TrainConfig, reference_subnets
from supernet.train.loop import Amp
from supernet.train.supernet_training import SupernetTask


def test_reference_subnets() -> None:
    space = SearchSpace.preset("digits")  # embed 32/48/64, depth 2-4, heads 1/2/4, mlp 2/3/4
    refs = reference_subnets(space)
    assert refs["smallest"] == space.smallest() and refs["largest"] == space.largest()
    middle = refs["middle"]
    assert (middle.embed_dim, middle.depth) == (48, 3)
    assert middle.num_heads == (2, 2, 2) and middle.mlp_ratio == (3.0, 3.0, 3.0)
    tiny = SearchSpace.preset("autoformer_tiny")  # two head counts: the lower median
    assert reference_subnets(tiny)["middle"].num_heads[0] == 3


def test_sandwich_and_uniform_draws(tiny_space: SearchSpace) -> None:
    sandwich = SubnetSampler(tiny_space, "sandwich", num_random=3, seed=5)
    steps = [sandwich.step() for _ in range(20)]
    for subnets in steps:
        assert len(subnets) == 5
        assert subnets[0] == tiny_space.largest() and subnets[1] == tiny_space.smallest()
        assert all(tiny_space.contains(s) for s in subnets[2:])
    assert len({s for step in steps for s in step[2:]}) > 10  # the random ones vary
    uniform = SubnetSampler(tiny_space, "uniform", num_random=0, seed=5)
    draws = [uniform.step() for _ in range(50)]
    assert all(len(d) == 1 for d in draws)
    # Exactly the space's own uniform draws with the seeded generator.
    rng = random.Random(5)
    assert [d[0] for d in draws] == [tiny_space.sample(rng) for _ in range(50)]


def test_sampler_state_round_trip(tiny_space: SearchSpace) -> None:
    a = SubnetSampler(tiny_space, "uniform", 0, seed=1)
    for _ in range(7):
        a.step()
    state = a.state()
    expected = [a.step() for _ in range(10)]
    b = SubnetSampler(tiny_space, "uniform", 0, seed=99)
    b.load_state(state)
    assert [b.step() for _ in range(10)] == expected


@pytest.mark.parametrize("distill", [False, True])
def test_sandwich_step_gradients(tiny_space: SearchSpace, distill: bool) -> None:
    """One sandwich step accumulates the mean of the subnets' losses; with distillation the
    students' targets are the largest subnet's (detached) softmax, not the labels."""
    torch.manual_seed(0)
    net = Supernet(tiny_space)
    x, y = torch.randn(6, 2, 8, 8), torch.randint(0, 5, (6,))
    config = TrainConfig(strategy="sandwich", num_random=1, distill=distill, label_smoothing=0.1)
    task = SupernetTask(net, config, SubnetSampler(tiny_space, "sandwich", 1, seed=3), None, {})
    reported = task.train_step(x, y, Amp.build("fp32", torch.device("cpu")))
    got = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}

    net.zero_grad(set_to_none=True)
    subnets = SubnetSampler(tiny_space, "sandwich", 1, seed=3).step()
    teacher_logits = net(x, subnets[0])
    losses = [F.cross_entropy(teacher_logits, y, label_smoothing=0.1)]
    soft = teacher_logits.detach().softmax(-1)
    for s in subnets[1:]:
        logits = net(x, s)
        if distill:
            losses.append(-(soft * logits.log_softmax(-1)).sum(-1).mean())
        else:
            losses.append(F.cross_entropy(logits, y, label_smoothing=0.1))
    (sum(losses) / len(losses)).backward()
    assert reported.item() == pytest.approx(losses[0].item())
    for n, p in net.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got[n], p.grad, msg=n)
