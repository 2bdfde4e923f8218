"""Forward time of a subnet run through the supernet, divided by that of its extracted model.

Both run in one process with the same thread count, interleaved (A, B, A, B ...) so that drifts in
machine load hit both alike; the ratio is of medians. Target: <= 1.10 at batch 64.

    python bench/supernet_speed.py                     # fashion_mnist preset, batch 64
    python bench/supernet_speed.py --space digits --batch 64 --repeats 30
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from supernet import SearchSpace, SubnetConfig, Supernet, complexity


def median_interleaved(fns: list[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def subnets_for(space: SearchSpace, n_random: int, seed: int) -> list[tuple[str, SubnetConfig]]:
    rng = random.Random(seed)
    picks = [("smallest", space.smallest()), ("largest", space.largest())]
    picks += [(f"random{i}", space.sample(rng)) for i in range(n_random)]
    return picks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="fashion_mnist", help="preset name")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--random", type=int, default=3, help="random subnets besides min/max")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    space = SearchSpace.preset(args.space)
    net = Supernet(space).eval()
    x = torch.randn(args.batch, space.in_chans, space.img_size, space.img_size)
    print(
        f"space={args.space} batch={args.batch} threads={args.threads} repeats={args.repeats} "
        f"torch={torch.__version__}"
    )
    print(f"{'subnet':<10} {'GMACs':>7} {'supernet ms':>12} {'extracted ms':>13} {'ratio':>6}")
    ratios = []
    with torch.inference_mode():
        for label, subnet in subnets_for(space, args.random, args.seed):
            model = net.extract(subnet)
            t_super, t_model = median_interleaved(
                [lambda s=subnet: net(x, s), lambda m=model: m(x)], args.repeats, args.warmup
            )
            ratio = t_super / t_model
            ratios.append(ratio)
            gmacs = complexity.macs(space, subnet) * args.batch / 1e9
            print(
                f"{label:<10} {gmacs:7.2f} {t_super * 1e3:12.2f} {t_model * 1e3:13.2f} "
                f"{ratio:6.3f}  {subnet}"
            )
    print(f"geometric-mean ratio {statistics.geometric_mean(ratios):.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
