"""Cost model check: analytic params/FLOPs vs what PyTorch counts, over random subnets.

For every preset of every family, ``--n`` random subnets (plus the smallest and largest; for
``swin_tiny`` also Swin-T and S3-T) are extracted and counted with
``torch.utils.flop_counter.FlopCounterMode`` (the 224 px presets on the meta device: shapes only)
and ``sum(p.numel())``; the expected difference is exactly 0. ViT presets run with both poolings
and both position embeddings. Also lists the params and MACs of every preset's smallest and
largest subnet, beside the AutoFormer paper's searched models (which must fall between them), and
Swin-T's and S3-T's cost stage by stage beside timm's counts.

    python bench/cost_model.py --n 200

Writes results/benchmarks/cost_model.csv, cost_model_presets.csv and cost_model.html.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import time
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch

from search.plots import write_html
from supernet import SearchSpace, Supernet, complexity
from supernet.space import PRESETS_DIR
from supernet.swin import SwinSubnet

OUT = Path(__file__).resolve().parent.parent / "results" / "benchmarks"
#: (pool, position embedding, relative positions); each preset is counted in every variant.
VARIANTS = [
    ("cls", "learned", "none"),
    ("mean", "sinusoidal", "none"),
    ("mean", "learned", "none"),
    ("cls", "sinusoidal", "none"),
    ("cls_mean", "learned", "autoformer"),
]
# AutoFormer paper, Table 3: the searched subnets (params in M, "FLOPs" in G which are MACs).
PAPER = {
    "autoformer_tiny": (5.7, 1.3),
    "autoformer_small": (22.9, 5.1),
    "autoformer_base": (54, 11),
}
PAPER |= {f"{name}_rpe": size for name, size in PAPER.items()}  # the same models


SWIN_T = SwinSubnet(
    embed_dim=(96, 192, 384, 768),
    depth=(2, 2, 6, 2),
    num_heads=((3, 3), (6, 6), (12,) * 6, (24, 24)),
    mlp_ratio=((4.0, 4.0), (4.0, 4.0), (4.0,) * 6, (4.0, 4.0)),
    window_size=((7, 7), (7, 7), (7,) * 6, (7, 7)),
)
S3_T = dataclasses.replace(SWIN_T, window_size=((7, 7), (7, 7), (14,) * 6, (7, 7)))
#: Published subnets of a preset, with timm 1.0.31's counts (sum(numel), FlopCounterMode / 2).
PUBLISHED = {
    "swin_tiny": {
        "Swin-T": (SWIN_T, 28_288_354, 4_490_566_656),
        "S3-T": (S3_T, 28_328_674, 4_623_332_352),
    }
}


def check_preset(name: str, n: int, seed: int) -> list[dict[str, object]]:
    base = SearchSpace.preset(name)
    device = "meta" if base.img_size >= 224 else "cpu"
    rng = random.Random(seed)
    rows = []
    variants = VARIANTS if base.family == "vit" else [(None, None, None)]
    for v, (pool, pos_embed, rel_pos) in enumerate(variants):
        space = (
            base
            if pool is None
            else dataclasses.replace(base, pool=pool, pos_embed=pos_embed, rel_pos=rel_pos)
        )
        with torch.device(device):
            net = Supernet(space)
        subnets = [space.sample(rng) for _ in range(n // len(variants))]
        if v == 0:
            subnets += [space.smallest(), space.largest()]
            subnets += [s for s, _, _ in PUBLISHED.get(name, {}).values()]
        for subnet in subnets:
            model = net.extract(subnet)
            counted_params = sum(p.numel() for p in model.parameters())
            rows.append(
                {
                    "space": name,
                    "family": space.family,
                    "pool": pool,
                    "pos_embed": pos_embed,
                    "rel_pos": rel_pos,
                    "subnet": str(subnet),
                    "analytic_flops": complexity.flops(space, subnet),
                    "counted_flops": complexity.count_flops(model, space),
                    "analytic_params": complexity.params(space, subnet),
                    "counted_params": counted_params,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="random subnets per preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    torch.set_num_threads(1)  # many small forwards: threads only add overhead
    start = time.perf_counter()
    presets = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    table = pd.DataFrame([r for name in presets for r in check_preset(name, args.n, args.seed)])
    table["flops_diff"] = table["analytic_flops"] - table["counted_flops"]
    table["params_diff"] = table["analytic_params"] - table["counted_params"]
    summary = table.groupby("space").agg(
        subnets=("subnet", "count"),
        max_abs_flops_diff=("flops_diff", lambda s: s.abs().max()),
        max_abs_params_diff=("params_diff", lambda s: s.abs().max()),
    )
    print(f"analytic vs counted, {len(table)} subnets in {time.perf_counter() - start:.0f} s")
    print(summary.to_string())

    sizes = []
    for name in presets:
        space = SearchSpace.preset(name)
        for which, subnet in (("smallest", space.smallest()), ("largest", space.largest())):
            sizes.append(
                {
                    "space": name,
                    "subnet": which,
                    "params_M": complexity.params(space, subnet) / 1e6,
                    "MMACs": complexity.macs(space, subnet) / 1e6,
                    "MFLOPs": complexity.flops(space, subnet) / 1e6,
                    "paper_searched_params_M": PAPER.get(name, (None, None))[0],
                    "paper_searched_MMACs": (PAPER.get(name) or (0, float("nan")))[1] * 1e3,
                }
            )
    sizes_table = pd.DataFrame(sizes)
    print("\nsmallest and largest subnet per preset (one 224 px image for the 224 px presets)")
    print(sizes_table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    for name, published in PUBLISHED.items():
        space = SearchSpace.preset(name)
        for label, (subnet, params, macs) in published.items():
            cost = complexity.breakdown(space, subnet)
            print(
                f"\n{label}: {cost.params:,} params (timm {params:,}), "
                f"{cost.macs:,} MACs (timm {macs:,})"
            )
            stages = pd.DataFrame(cost.per_stage())
            print(
                stages[
                    ["stage", "resolution", "embed_dim", "depth", "merge_macs", "macs"]
                ].to_string()
            )
            if (cost.params, cost.macs) != (params, macs):
                raise SystemExit(f"{label} is not priced as timm counts it")

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "cost_model.csv", index=False)
    sizes_table.to_csv(args.out / "cost_model_presets.csv", index=False)
    fig = px.scatter(
        table,
        x="counted_flops",
        y="analytic_flops",
        color="space",
        symbol="family",
        log_x=True,
        log_y=True,
        hover_data=["subnet", "pool", "pos_embed", "rel_pos", "flops_diff", "params_diff"],
        title="Analytic FLOPs vs FlopCounterMode (every point on the diagonal)",
    )
    write_html(fig, args.out / "cost_model.html")  # plotly.js once, as plotly.min.js beside it
    print(f"wrote {args.out}/cost_model.csv, cost_model_presets.csv, cost_model.html")
    if (table["flops_diff"] != 0).any() or (table["params_diff"] != 0).any():
        raise SystemExit("cost model disagrees with the counters")


if __name__ == "__main__":
    main()
