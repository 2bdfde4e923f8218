"""``python -m search.export``: the command line of :func:`search.export.export_subnet` (its
options: ``python -m search.export --help``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from supernet.common.cli import parse_args, run_cli
from supernet.common.errors import UserError

from ..budget import parse_amount
from ..costs import METRICS, format_cost
from . import ExportResult, export_subnet
from . import __doc__ as USAGE


@dataclass
class ExportOptions:
    trial: Any = "best"
    out: str | None = None
    flops: Any = None
    params: Any = None
    macs: Any = None
    latency_ms: Any = None
    onnx: Any = "auto"
    overwrite: bool = False
    allow_infeasible: bool = False
    supernet: str | None = None
    debug: bool = False


def main(argv: Sequence[str]) -> ExportResult:
    positional, opts = parse_args(argv, ExportOptions, USAGE or "")
    if len(positional) != 1:
        raise UserError(
            "give one search run dir: python -m search.export <run dir> trial=best|<number> "
            "out=<dir> (see --help)"
        )
    max_costs = {m: v for m in METRICS if (v := parse_amount(m, getattr(opts, m))) is not None}
    result = export_subnet(
        positional[0],
        opts.trial,
        opts.out,
        max_costs=max_costs,
        onnx=opts.onnx,
        overwrite=opts.overwrite,
        supernet=opts.supernet,
        allow_infeasible=opts.allow_infeasible,
    )
    meta = result.metadata
    acc = meta["val_acc"]
    print(
        f"picked trial {result.trial}: {result.subnet}, "
        f"val_acc {'n/a' if acc is None else f'{acc:.4f}'}, "
        f"{format_cost('params', meta['costs']['params'])}, "
        f"{format_cost('flops', meta['costs']['flops'])} ({result.reason})"
    )
    files = sorted(p.name for p in result.directory.iterdir())
    print(f"exported to {result.directory}: {', '.join(files)}")
    print(f'load it with: supernet.load_subnet("{result.directory}")')
    return result


def cli() -> None:
    """The console script (``vitnas-export``): the same as ``python -m search.export``."""
    run_cli(main)
    sys.exit(0)


if __name__ == "__main__":
    cli()
