"""Inference speed: subnet through the supernet vs its extracted model vs timm's ViT.

For each subnet, the supernet forward, the extracted standalone model and (for uniform subnets
whose heads x head_dim equals the width, the shapes timm can build) timm's ``VisionTransformer``
loaded with the same weights run interleaved in one process with the same thread count; ratios
are of medians. Targets: supernet / extracted <= 1.10, extracted / timm <= 1.05.

    python bench/speed.py                        # fashion_mnist + autoformer_tiny, batch 1 and 64
    python bench/speed.py --space fashion_mnist --batch 64 --repeats 30

Writes results/benchmarks/speed.csv and speed.png (+ .html; timm is the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import common
import pandas as pd
import plotly.express as px
import torch

from supernet import SearchSpace, SubnetConfig, Supernet, VisionTransformer, complexity

OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks"


def median_times(fns: list[Callable[[], object]], repeats: int, warmup: int) -> list[float]:
    """Median seconds of each function, run interleaved (A, B, C, A, B, C ...)."""
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


def timm_twin(space: SearchSpace, model: VisionTransformer) -> torch.nn.Module | None:
    """timm's ViT with the same architecture and weights, or None where timm cannot express it."""
    try:
        from timm.models.vision_transformer import VisionTransformer as TimmViT
    except ImportError:
        return None
    s = model.subnet
    uniform = len(set(s.num_heads)) == 1 and len(set(s.mlp_ratio)) == 1
    if not uniform or s.num_heads[0] * space.head_dim != s.embed_dim:
        return None
    twin = TimmViT(
        img_size=space.img_size,
        patch_size=space.patch_size,
        in_chans=space.in_chans,
        num_classes=space.num_classes,
        embed_dim=s.embed_dim,
        depth=s.depth,
        num_heads=s.num_heads[0],
        mlp_ratio=s.mlp_ratio[0],
        qkv_bias=True,
        class_token=space.pool == "cls",
        global_pool="token" if space.pool == "cls" else "avg",
        fc_norm=False,
    )
    twin.load_state_dict(model.state_dict(), strict=True)  # same keys, same layout as timm
    return twin.eval()


def subnets_for(space: SearchSpace, n_random: int, seed: int) -> list[tuple[str, SubnetConfig]]:
    rng = random.Random(seed)
    picks = [("smallest", space.smallest()), ("largest", space.largest())]
    # A uniform subnet timm can build (heads x head_dim == width), e.g. DeiT-Ti in autoformer_tiny.
    for d in space.embed_dim:
        h = d // space.head_dim
        if d % space.head_dim == 0 and h in space.num_heads:
            uniform = space.uniform(d, max(space.depth), h, max(space.mlp_ratio))
            if uniform != space.largest():
                picks.append(("uniform", uniform))
            break
    picks += [(f"random{i}", space.sample(rng)) for i in range(n_random)]
    return picks


def bench_space(name: str, batch: int, args: argparse.Namespace) -> list[dict[str, object]]:
    space = SearchSpace.preset(name)
    net = Supernet(space).eval()
    x = torch.randn(batch, space.in_chans, space.img_size, space.img_size)
    rows = []
    with torch.inference_mode():
        for label, subnet in subnets_for(space, args.random, args.seed):
            model = net.extract(subnet)
            twin = timm_twin(space, model)
            fns: list[Callable[[], object]] = [partial(net, x, subnet), partial(model, x)]
            if twin is not None:
                fns.append(partial(twin, x))
                assert (twin(x) - model(x)).abs().max().item() < 1e-4, "timm twin differs"
            times = median_times(fns, args.repeats, args.warmup)
            row: dict[str, object] = {
                "space": name,
                "batch": batch,
                "threads": torch.get_num_threads(),
                "subnet_kind": label,
                "subnet": str(subnet),
                "gmacs": complexity.macs(space, subnet) * batch / 1e9,
                "supernet_ms": times[0] * 1e3,
                "extracted_ms": times[1] * 1e3,
                "timm_ms": times[2] * 1e3 if twin is not None else float("nan"),
            }
            row["supernet_over_extracted"] = times[0] / times[1]
            row["extracted_over_timm"] = times[1] / times[2] if twin is not None else float("nan")
            rows.append(row)
            print(
                f"{name:<16} b={batch:<3} {label:<9} {row['gmacs']:8.2f} GMACs  "
                f"supernet {row['supernet_ms']:9.2f} ms  extracted {row['extracted_ms']:9.2f} ms  "
                f"timm {row['timm_ms']:9.2f} ms  "
                f"super/extr {row['supernet_over_extracted']:.3f}  "
                f"extr/timm {row['extracted_over_timm']:.3f}",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", nargs="+", default=["fashion_mnist", "autoformer_tiny"])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--random", type=int, default=2, help="random subnets besides min/max")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, {args.threads} threads, medians of {args.repeats} runs")
    rows = [r for name in args.space for b in args.batch for r in bench_space(name, b, args)]
    table = pd.DataFrame(rows)
    summary = table.groupby(["space", "batch"])[
        ["supernet_over_extracted", "extracted_over_timm"]
    ].agg(lambda s: statistics.geometric_mean(s.dropna()) if s.notna().any() else float("nan"))
    print("\ngeometric means (targets: supernet/extracted <= 1.10, extracted/timm <= 1.05)")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "speed.csv", index=False)
    long = table.melt(
        id_vars=["space", "batch", "subnet_kind"],
        value_vars=["supernet_over_extracted", "extracted_over_timm"],
        var_name="ratio",
    ).dropna()
    fig = px.bar(
        long,
        x="subnet_kind",
        y="value",
        color="ratio",
        barmode="group",
        facet_col="space",
        facet_row="batch",
        title="Forward-time ratios (1.0 = equal speed)",
    )
    written = common.save_png(fig, args.out / "speed.png")
    print(f"wrote {args.out / 'speed.csv'}, " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    main()
