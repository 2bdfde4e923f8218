"""Swin cost model check: analytic params/MACs vs what PyTorch counts, over random subnets.

For every Swin preset (``conf/space/swin_*.yaml``), ``--n`` random subnets (plus the smallest,
largest and middle ones, and for ``swin_tiny`` Swin-T and S3-T) are extracted from a supernet and
counted with ``torch.utils.flop_counter.FlopCounterMode`` (224 px on the meta device: shapes only)
and ``sum(p.numel())``; the expected difference is exactly 0. Also lists each preset's smallest
and largest subnet, and the per-stage breakdown of Swin-T beside the published totals.

    python bench/swin_cost_model.py --n 200

Writes swin_cost_model.csv and swin_cost_model_presets.csv under ``--out``
(results/benchmarks by default).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from pathlib import Path

import pandas as pd
import torch

from supernet.space import PRESETS_DIR
from supernet.swin import complexity
from supernet.swin.space import SwinSpace, SwinSubnet
from supernet.swin.supernet import SwinSupernet

OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks"

SWIN_T = SwinSubnet(
    embed_dim=(96, 192, 384, 768),
    depth=(2, 2, 6, 2),
    num_heads=((3, 3), (6, 6), (12,) * 6, (24, 24)),
    mlp_ratio=((4.0, 4.0), (4.0, 4.0), (4.0,) * 6, (4.0, 4.0)),
    window_size=((7, 7), (7, 7), (7,) * 6, (7, 7)),
)
S3_T = dataclasses.replace(SWIN_T, window_size=((7, 7), (7, 7), (14,) * 6, (7, 7)))
#: timm 1.0.31, FlopCounterMode total / 2 and sum(numel), batch 1 (Swin README: 28M, 4.5G).
PUBLISHED = {
    "Swin-T": (SWIN_T, 28_288_354, 4_490_566_656),
    "S3-T": (S3_T, 28_328_674, 4_623_332_352),
}


def check_preset(name: str, n: int, seed: int) -> list[dict[str, object]]:
    space = SwinSpace.preset(name)
    device = "meta" if space.img_size >= 224 else "cpu"
    rng = random.Random(seed)
    with torch.device(device):
        net = SwinSupernet(space)
    subnets = [space.smallest(), space.largest(), space.middle()]
    if name == "swin_tiny":
        subnets += [SWIN_T, S3_T]
    subnets += [space.sample(rng) for _ in range(n)]
    rows = []
    for subnet in subnets:
        model = net.extract(subnet)
        rows.append(
            {
                "space": name,
                "subnet": str(subnet),
                "analytic_macs": complexity.macs(space, subnet),
                "counted_macs": complexity.count_flops(model, space) // 2,
                "analytic_params": complexity.params(space, subnet),
                "counted_params": sum(p.numel() for p in model.parameters()),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="random subnets per preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)  # many tiny forwards: threads only add overhead

    start = time.perf_counter()
    presets = sorted(p.stem for p in PRESETS_DIR.glob("swin_*.yaml"))
    table = pd.DataFrame([r for name in presets for r in check_preset(name, args.n, args.seed)])
    table["macs_diff"] = table["analytic_macs"] - table["counted_macs"]
    table["params_diff"] = table["analytic_params"] - table["counted_params"]
    summary = table.groupby("space").agg(
        subnets=("subnet", "count"),
        max_abs_macs_diff=("macs_diff", lambda s: s.abs().max()),
        max_abs_params_diff=("params_diff", lambda s: s.abs().max()),
    )
    print(f"analytic vs counted, {len(table)} subnets in {time.perf_counter() - start:.0f} s")
    print(summary.to_string())

    sizes = []
    for name in presets:
        space = SwinSpace.preset(name)
        for which, subnet in (("smallest", space.smallest()), ("largest", space.largest())):
            cost = complexity.breakdown(space, subnet)
            sizes.append({"space": name, "subnet": which, "params": cost.params, "MACs": cost.macs})
    sizes_table = pd.DataFrame(sizes)
    print("\nsmallest and largest subnet per preset (MACs per image; FLOPs = 2 x MACs)")
    print(sizes_table.to_string(index=False))

    tiny = SwinSpace.preset("swin_tiny")
    for label, (subnet, params, macs) in PUBLISHED.items():
        cost = complexity.breakdown(tiny, subnet)
        print(f"\n{label}: {cost.params:,} params (timm {params:,}), {cost.macs:,} MACs ({macs:,})")
        stages = pd.DataFrame(cost.per_stage())
        print(
            stages[["stage", "resolution", "embed_dim", "depth", "merge_macs", "macs"]].to_string()
        )

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "swin_cost_model.csv", index=False)
    sizes_table.to_csv(args.out / "swin_cost_model_presets.csv", index=False)
    print(f"\nwrote {args.out}/swin_cost_model.csv, swin_cost_model_presets.csv")
    if (table["macs_diff"] != 0).any() or (table["params_diff"] != 0).any():
        raise SystemExit("cost model disagrees with the counters")


if __name__ == "__main__":
    main()
