"""``python -m supernet.convert autoformer <file.pth> out=<dir>``: other tools' checkpoints as this
tool's.

    python -m supernet.convert autoformer supernet-tiny.pth out=runs/af-tiny data=/data/imagenet
    python -m supernet.convert autoformer supernet-tiny.pth out=exported/af-t subnet=autoformer_t

An AutoFormer (microsoft/Cream) supernet checkpoint becomes ``<out>/supernet.pt``, which
``python -m search supernet=<out>/supernet.pt`` searches on the images of ``data=``; a retrained
subnet checkpoint becomes an export directory (``subnet.yaml``, ``model.safetensors``,
``model.onnx``, ``README.md``) that ``supernet.load_subnet(out)`` loads and
``python -m supernet.train mode=finetune subnet=<out>`` fine-tunes. AutoFormer stores a retrained
subnet inside the whole supernet-shaped model: say which subnet it is with ``subnet=``.

Options (``key=value``):
  out=<dir>              where to write (required)
  space=<preset|YAML>    the search space it was trained for; default: inferred from the shapes
                         (autoformer_tiny_rpe, autoformer_small_rpe or autoformer_base_rpe)
  subnet=<name|YAML>     read it as this retrained subnet and write an export directory:
                         autoformer_t|autoformer_s|autoformer_b (the released ones), smallest,
                         middle, largest, or a subnet YAML. Shapes that are exactly one subnet of
                         the space are read as that subnet without it
  bias_for=largest|<name|YAML>  a supernet's Q/K/V bias is exact for one head count per layer
                         (Cream issue #121): the space's largest (default) or this subnet's
  data=<dir>             a supernet's images: an ImageFolder root with train/ and val/ (or test/),
                         recorded for python -m search, which carves its validation split from
                         train/ (required for a supernet)
  val_size=10000         how many train/ images that validation split holds
  onnx=auto|true|false   a subnet: also write model.onnx, checked against PyTorch (<= 1e-4)
  overwrite=false        replace an earlier conversion in out (never other files)
  debug=false            show the traceback of an error

It loads with ``torch.load(weights_only=True)``: a pickle holding more than tensors and plain
data is refused, never run.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from . import complexity
from .checkpoint import file_sha256, save_checkpoint
from .common.atomic import (
    check_not_cwd,
    check_target_dir,
    move_into_place,
    remove_stale_staging,
    staging_dir,
    writing,
)
from .common.errors import UserError
from .common.rundir import check_not_a_runs_output
from .data import imagefolder_preprocessing
from .onnx_export import onnx_wanted
from .preprocessing import Preprocessing
from .saved_model import CONFIG_FILE, EXPORT_FILES, WEIGHTS_FILE, read_subnet_yaml, save_subnet
from .space import Space, SpaceError
from .vit.autoformer import Conversion, convert
from .vit.space import SearchSpace

#: What an earlier conversion wrote (a supernet's checkpoint and README, or a subnet's export):
#: all that ``overwrite=true`` replaces.
_REPLACES = (
    EXPORT_FILES | {"supernet.pt"},
    "an earlier conversion",
    ({"supernet.pt", "README.md"}, {CONFIG_FILE, WEIGHTS_FILE}),
)

__all__ = ["ConvertOptions", "convert_autoformer", "main"]

SOURCES = ("autoformer",)


@dataclass
class ConvertOptions:
    out: str | None = None
    space: str | None = None
    subnet: str | None = None
    bias_for: str = "largest"
    data: str | None = None
    val_size: int = 10000
    onnx: Any = "auto"
    overwrite: bool = False
    debug: bool = False


def _space(spec: str | None) -> SearchSpace | None:
    if spec is None:
        return None
    try:
        space = Space.from_yaml(spec) if spec.endswith((".yaml", ".yml")) else Space.preset(spec)
    except (SpaceError, FileNotFoundError) as exc:
        raise UserError(f"space={spec}: {str(exc).splitlines()[0]}") from None
    if not isinstance(space, SearchSpace):
        raise UserError(
            f"space={spec} is a {space.family} space; AutoFormer's models are ViTs: give a ViT "
            "space (e.g. space=autoformer_tiny_rpe) or leave space= out"
        )
    return space


def _data_config(root: str, space: SearchSpace, val_size: int) -> dict[str, Any]:
    """The ImageFolder data config a converted supernet records for ``python -m search``."""
    path = Path(root).expanduser().resolve()
    train = path / "train"
    if not train.is_dir() or not any((path / d).is_dir() for d in ("val", "test")):
        raise UserError(
            f"data={root} needs {train} and {path / 'val'} (or {path / 'test'}), each with one "
            "sub-folder of images per class (an ImageFolder root)"
        )
    classes = sum(1 for d in train.iterdir() if d.is_dir())
    if classes != space.num_classes:
        raise UserError(
            f"data={root}: {train} has {classes} class folder(s) but the checkpoint classifies "
            f"{space.num_classes}; give the images it was trained on (ImageNet for AutoFormer's)"
        )
    return {
        "name": "imagefolder",
        "root": str(path),
        "img_size": space.img_size,
        "val_size": val_size,
        "split_seed": 0,
    }


def _class_names(root: str) -> list[str]:
    """ImageFolder's classes (its sorted class folders) under ``root``/train."""
    from torchvision.datasets.folder import find_classes

    return find_classes(str(Path(root) / "train"))[0]


def autoformer_preprocessing(space: SearchSpace) -> Preprocessing:
    """What AutoFormer's (DeiT's) evaluation feeds a retrained subnet: shorter side to 256/224 of
    the input size, bicubic, centre crop, ImageNet's mean and std."""
    return imagefolder_preprocessing(
        space.img_size, interpolation="bicubic", dataset="imagenet (AutoFormer's evaluation)"
    )


def _costs(space: SearchSpace, subnet: Any) -> dict[str, int]:
    cost = complexity.breakdown(space, subnet)
    return {"params": int(cost.params), "macs": int(cost.macs), "flops": int(cost.flops)}


def _source(path: Path, result: Conversion) -> dict[str, Any]:
    return {
        "format": "autoformer",
        "file": str(path.resolve()),
        "sha256": file_sha256(path),
        "kind": result.kind,
        "space": result.space_source,
        "qkv_bias_exact_for_heads": list(result.bias_heads),
        "converted": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": str(torch.__version__),
    }


def _write_supernet(
    result: Conversion, out: Path, source: dict[str, Any], data: dict[str, Any], overwrite: bool
) -> None:
    assert result.net is not None
    space = result.space
    small, large = space.smallest(), space.largest()
    readme = "\n".join(
        [
            f"# AutoFormer supernet, space {space.name or '(custom)'}",
            "",
            f"Converted from `{source['file']}` (sha256 `{source['sha256']}`) by "
            "`python -m supernet.convert autoformer`.",
            "",
            f"- Space: {result.space_source}; {space.count_subnets():,} subnets, "
            f"{complexity.params(space, small):,} to {complexity.params(space, large):,} params.",
            f"- Q/K/V bias: {result.bias_summary()}.",
            f"- Search data: ImageFolder `{data['root']}` ({data['val_size']} validation images "
            "from train/).",
            "",
            "```bash",
            f"python -m search supernet={out / 'supernet.pt'} budget.params=6M search.n_trials=100",
            "```",
        ]
    )
    work = staging_dir(out)
    try:
        # python -m search evaluates on data= with this tool's ImageFolder pipeline: its exports
        # carry that preprocessing
        pre = imagefolder_preprocessing(data["img_size"], _class_names(data["root"]))
        save_checkpoint(
            work / "supernet.pt",
            result.net,
            data=data,
            preprocessing=pre.to_dict(),
            converted_from=source,
        )
        (work / "README.md").write_text(readme + "\n")
        # in case it appeared meanwhile
        check_target_dir(out, overwrite, f"out={out}", "overwrite=true", *_REPLACES)
        move_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _write_subnet(
    result: Conversion, out: Path, source: dict[str, Any], onnx: str, overwrite: bool
) -> float | None:
    assert result.model is not None and result.subnet is not None
    space, subnet = result.space, result.subnet
    with_onnx = onnx_wanted(onnx)
    costs = _costs(space, subnet)
    metadata: dict[str, Any] = {"source": source, "costs": costs, "space": space.to_dict()}
    preprocessing = autoformer_preprocessing(space)
    work = staging_dir(out)
    try:
        readme = "\n".join(
            [
                f"# Subnet {subnet}",
                "",
                f"AutoFormer subnet converted from `{source['file']}` (sha256 "
                f"`{source['sha256']}`), space {result.space_source}.",
                "",
                f"- params {costs['params']:,}; MACs / FLOPs per image {costs['macs']:,} / "
                f"{costs['flops']:,} (FLOPs = 2 x MACs)",
                "- `supernet.load_subnet(<this directory>)` loads it; "
                "`python -m supernet.train mode=finetune subnet=<this directory>` fine-tunes it.",
                "",
                *preprocessing.readme_section(with_onnx),
            ]
        )
        staged = save_subnet(
            result.model,
            space,
            work / "subnet",
            metadata,
            {"README.md": readme + "\n"},
            preprocessing=preprocessing,
            onnx=with_onnx,
        )
        onnx_record = read_subnet_yaml(staged)[2].get("onnx")
        # in case it appeared meanwhile
        check_target_dir(out, overwrite, f"out={out}", "overwrite=true", *_REPLACES)
        move_into_place(staged, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return onnx_record["max_abs_diff"] if onnx_record else None


def convert_autoformer(path: str | Path, opts: ConvertOptions) -> Conversion:
    """Convert one AutoFormer checkpoint as ``opts`` say, print what was found, write ``out``."""
    if not opts.out:
        raise UserError("give out=<dir>: where to write the converted checkpoint")
    out, path = Path(opts.out), Path(path)
    onnx = str(opts.onnx).lower()
    onnx_wanted(onnx, quiet=True)  # a bad value, or onnx=true without its packages: fail now
    if opts.val_size < 1:
        raise UserError(
            f"val_size must be a positive number of images, got {opts.val_size}; pass "
            "val_size=10000 (or fewer, for a quicker search)"
        )
    check_not_cwd(out, f"out={out}")
    check_not_a_runs_output(out, f"out={out}")
    with writing(out):
        remove_stale_staging(out)  # what a conversion killed half-way left
    check_target_dir(out, opts.overwrite, f"out={out}", "overwrite=true", *_REPLACES)
    bias_for = None if opts.bias_for == "largest" else opts.bias_for
    result = convert(path, _space(opts.space), opts.subnet, bias_for)
    space = result.space
    data = None
    if result.kind == "supernet":
        if not opts.data:
            raise UserError(
                f"{path} is a supernet checkpoint, and a supernet needs the images python -m "
                "search will evaluate its subnets on; pass data=<ImageFolder root with train/ and "
                "val/> (or subnet=<name> to export one subnet)"
            )
        data = _data_config(opts.data, space, opts.val_size)
    elif opts.data:
        raise UserError("data= is for a supernet (the images it is searched on); drop it")
    if result.kind == "supernet":
        what = "a supernet checkpoint (its shapes hold the space's largest subnet)"
    elif opts.subnet:
        what = f"a checkpoint read as the retrained subnet {result.subnet} (subnet={opts.subnet})"
    else:
        what = f"a subnet checkpoint (its shapes are exactly the subnet {result.subnet})"
    print(f"found: {what}; it has {result.layout.describe()}")
    print(f"space: {result.space_source}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"qkv bias: {result.bias_summary()}")
    source = _source(path, result)
    with writing(out):
        if result.kind == "supernet":
            assert data is not None
            _write_supernet(result, out, source, data, opts.overwrite)
            print(
                f"wrote {out / 'supernet.pt'}: a supernet of {space.count_subnets():,} subnets; "
                f"search it with: python -m search supernet={out / 'supernet.pt'} "
                "budget.params=<limit>"
            )
        else:
            diff = _write_subnet(result, out, source, onnx, opts.overwrite)
            costs = _costs(space, result.subnet)
            files = ", ".join(sorted(p.name for p in out.iterdir()))
            print(
                f"wrote {out}: {files} ({costs['params']:,} params, {costs['macs']:,} MACs"
                + (f"; ONNX within {diff:.1e} of PyTorch" if diff is not None else "")
                + f"); load it with supernet.load_subnet({str(out)!r})"
            )
    return result


def main(argv: Sequence[str]) -> Conversion:
    from supernet.common.cli import parse_args

    positional, opts = parse_args(argv, ConvertOptions, __doc__ or "")
    if not positional or positional[0] not in SOURCES:
        given = repr(positional[0]) if positional else "none"
        raise UserError(
            f"unknown or missing source format {given}; use python -m supernet.convert "
            f"{'|'.join(SOURCES)} <file> out=<dir> (see --help)"
        )
    if len(positional) != 2:
        raise UserError(
            "give one checkpoint file: python -m supernet.convert autoformer <file.pth> out=<dir>"
        )
    return convert_autoformer(positional[1], opts)


def cli() -> None:
    """The console script (``vitnas-convert``): the same as ``python -m supernet.convert``."""
    from supernet.common.cli import run_cli

    run_cli(main)
    sys.exit(0)


if __name__ == "__main__":
    cli()
