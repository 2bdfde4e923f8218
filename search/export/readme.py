"""The README.md an export directory carries: what the subnet is, what it costs, how to load it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supernet import Subnet
from supernet.preprocessing import Preprocessing

from ..latency.profile import describe_target

__all__ = ["render_readme"]


def render_readme(
    subnet: Subnet,
    meta: Mapping[str, Any],
    has_onnx: bool,
    preprocessing: Preprocessing | None = None,
) -> str:
    costs = meta["costs"]
    lines = [
        f"# Subnet {subnet}",
        "",
        f"Searched subnet (trial {meta['source']['trial']} of study "
        f"`{meta['source']['study']}`), with the weights it inherits from the supernet.",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in subnet.to_dict().items()),
        f"| params | {costs['params']:,} |",
        f"| MACs / FLOPs per image | {costs['macs']:,} / {costs['flops']:,} (FLOPs = 2 x MACs) |",
    ]
    if costs.get("latency_ms") is not None:
        target = costs.get("latency_target")
        on = f" on {describe_target(target)}" if target else ""
        lines.append(f"| predicted latency | {costs['latency_ms']:.3g} ms{on} |")
    acc = meta.get("val_acc")
    lines += [
        f"| validation accuracy (inherited weights) | "
        f"{'not evaluated' if acc is None else f'{acc:.4f}'} |",
        f"| source checkpoint | `{meta['source']['checkpoint']}` |",
        f"| checkpoint sha256 | `{meta['source']['checkpoint_sha256']}` |",
        "",
        "```python",
        "from supernet import load_subnet",
        "",
        'model = load_subnet("<this directory>")  # a torch.nn.Module in eval mode',
        "```",
        "",
        "Fine-tune it (or train it from scratch) before reporting test accuracy: "
        "`python -m supernet.train mode=finetune subnet=<this directory>`.",
    ]
    if has_onnx:
        lines += [
            "",
            "`model.onnx`: input `images` (batch, "
            f"{meta['space']['in_chans']}, {meta['space']['img_size']}, "
            f"{meta['space']['img_size']}), output `logits`; matches PyTorch within "
            f"{meta['onnx']['max_abs_diff']:.1e}.",
        ]
    if preprocessing is not None:
        lines += ["", *preprocessing.readme_section(has_onnx)]
    return "\n".join(lines) + "\n"
