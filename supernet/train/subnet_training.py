"""Train one subnet on its own: ``train_subnet(config) -> SubnetResult``.

``mode=finetune`` starts from inherited weights: an export directory's (``subnet=<dir>``, as
written by ``supernet.save_subnet`` / ``python -m search.export``), or a supernet checkpoint's
slices (``supernet=<supernet.pt> subnet=<yaml or smallest|middle|largest>``). ``mode=scratch``
trains the same architecture from random initialisation with the same recipe. Both report test
accuracy (``result.json``), log validation accuracy per epoch (``metrics.csv``), checkpoint every
epoch (``checkpoint.pt``, for ``resume=true``) and export the trained model to ``<run_dir>/subnet``
with the preprocessing of the data it was trained on.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .. import complexity
from ..checkpoint import check_same_space, load_checkpoint, load_supernet
from ..common.atomic import atomic_write, atomic_write_text, make_dir
from ..common.errors import CheckpointError
from ..common.rundir import claim_run_dir
from ..common.yamlio import YamlError, read_yaml
from ..data import DataSplits, build_data
from ..evaluation import EvalSet, accuracies
from ..family import family_of
from ..onnx_export import ONNX_FILE, onnx_wanted
from ..saved_model import CONFIG_FILE, WEIGHTS_FILE, load_subnet, read_subnet_yaml, save_subnet
from ..space import Space, SpaceError, Subnet
from .config import ConfigError, RunConfig, TrainConfig
from .distributed import DistEnv
from .loop import Amp, Hooks, fit
from .resume import check_same_settings, resume_path
from .sampling import reference_subnets
from .supernet_training import seed_everything

__all__ = [
    "CHECKPOINT",
    "EXPORT_DIR",
    "RESULT_FILE",
    "SubnetResult",
    "SubnetSource",
    "train_subnet",
]

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
FORMAT = "vitnas-subnet-training"
RESULT_FILE = "result.json"
EXPORT_DIR = "subnet"
NAMED = ("smallest", "middle", "largest")


@dataclass
class SubnetSource:
    """What ``subnet=`` / ``supernet=`` resolve to: a space, an architecture, maybe weights."""

    space: Space
    subnet: Subnet
    weights: dict[str, torch.Tensor] | None  # the inherited weights (finetune)
    description: str


@dataclass
class SubnetResult:
    run_dir: Path
    mode: str
    space: Space
    subnet: Subnet
    test_acc: float
    val_acc: float
    epochs: int
    params: int
    macs: int
    export_dir: Path
    initial_val_acc: float | None = None  # finetune: the inherited weights, before training
    initial_test_acc: float | None = None
    wall_s: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "subnet": self.subnet.to_dict(),
            "space": self.space.name or self.space.to_dict(),
            "test_acc": self.test_acc,
            "val_acc": self.val_acc,
            "initial_test_acc": self.initial_test_acc,
            "initial_val_acc": self.initial_val_acc,
            "epochs": self.epochs,
            "params": self.params,
            "macs": self.macs,
            "wall_s": self.wall_s,
            "export_dir": str(self.export_dir),
        }


# -- what to train -----------------------------------------------------------------------------
def _read_subnet_file(path: Path) -> tuple[Space | None, dict[str, Any]]:
    """The space (an export's subnet.yaml names one) and the subnet's fields of a YAML file; the
    fields become a subnet once the space, hence the family, is known."""
    try:
        data = read_yaml(path, "subnet file")
    except YamlError as exc:
        raise ConfigError(
            f"{exc}; give a subnet YAML (embed_dim, depth, num_heads, mlp_ratio)"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{path} is not a subnet YAML (expected a mapping of fields); give one with "
            "embed_dim, depth, num_heads and mlp_ratio"
        )
    space = None
    if "subnet" in data and "embed_dim" not in data:  # an export's subnet.yaml
        if data.get("space") is not None:
            space = Space.from_dict(data["space"])
        data = data["subnet"]
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} is not a subnet YAML (expected a mapping of fields)")
    return space, dict(data)


def _agree(spaces: list[tuple[str, Space]]) -> Space | None:
    """The one space every source names; fails naming the fields two sources disagree on."""
    for (name_a, a), (name_b, b) in itertools.pairwise(spaces):
        diff = a.differences(b)
        if diff:
            detail = "; ".join(f"{f}: {getattr(a, f)!r} vs {getattr(b, f)!r}" for f in diff)
            raise ConfigError(
                f"{name_a} and {name_b} name different search spaces ({detail}); give "
                "sources of one space (a subnet searched in, or exported from, that supernet), "
                "or leave one out"
            )
    return spaces[0][1] if spaces else None


def resolve_source(config: RunConfig) -> SubnetSource:
    """Resolve ``subnet=`` (with ``supernet=`` and ``space=``) into what is trained."""
    assert config.subnet is not None
    spec = config.subnet
    spaces: list[tuple[str, Space]] = []
    if config.space is not None:
        spaces.append(("space=", config.space))
    subnet: Subnet | None = None
    fields: dict[str, Any] | None = None  # a bare subnet YAML's, read once the space is known
    export: Path | None = None
    if spec not in NAMED:
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / CONFIG_FILE).is_file():
                raise ConfigError(f"subnet={spec}: {path} holds no {CONFIG_FILE}")
            file_space, subnet, _ = read_subnet_yaml(path)
            spaces.append((f"subnet={spec}", file_space))
            if (path / WEIGHTS_FILE).is_file():
                export = path
        elif path.is_file():
            file_space, fields = _read_subnet_file(path)
            if file_space is not None:
                spaces.append((f"subnet={spec}", file_space))
        else:
            raise ConfigError(
                f"subnet={spec}: no such file or directory (give an export directory, a subnet "
                f"YAML, or one of {', '.join(NAMED)})"
            )
    net = None
    if config.supernet is not None:
        net, _ = load_supernet(config.supernet)
        spaces.append((f"supernet={config.supernet}", net.space))
    space = _agree(spaces)
    if space is None:
        raise ConfigError(f"subnet={spec} names no search space: pass space=<preset> as well")
    try:
        if fields is not None:
            subnet = space.subnet_from_dict(fields)
        elif subnet is None:
            subnet = reference_subnets(space)[spec]
        space.validate(subnet)
    except SpaceError as exc:
        raise ConfigError(f"subnet={spec}: {exc}") from None
    weights = None
    description = f"{spec}"
    if config.mode == "finetune":
        if net is not None:
            weights = {k: v.detach().clone() for k, v in net.subnet_state_dict(subnet).items()}
            description = f"{subnet} inherited from {config.supernet}"
        elif export is not None:
            weights = load_subnet(export).state_dict()
            description = f"{subnet} inherited from {export}"
        else:
            raise ConfigError(
                "mode=finetune needs inherited weights: pass subnet=<export directory with "
                f"{WEIGHTS_FILE}>, or supernet=<supernet.pt> with subnet=<yaml or "
                f"{'|'.join(NAMED)}>; mode=scratch trains from random initialisation"
            )
    else:
        description = f"{subnet} from random initialisation"
    return SubnetSource(space, subnet, weights, description)


def _check_same_subnet(
    payload: Mapping[str, Any], path: Path, mode: str, space: Space, subnet: Subnet
) -> None:
    try:
        saved_space = Space.from_dict(payload["space"])
        saved_subnet = saved_space.subnet_from_dict(payload["subnet"])
    except (KeyError, SpaceError) as exc:
        raise CheckpointError(f"{path} holds no valid space or subnet ({exc})") from None
    check_same_space(saved_space, space, path)
    if payload.get("mode") != mode or saved_subnet != subnet:
        raise CheckpointError(
            f"cannot resume {path} as mode={mode} {subnet}: it trains "
            f"mode={payload.get('mode')} {saved_subnet}; give this run a hydra.run.dir of its "
            "own, or repeat that run's mode= and subnet= to continue it"
        )


# -- training ----------------------------------------------------------------------------------
class SubnetTask:
    def __init__(
        self,
        model: nn.Module,
        space: Space,
        config: TrainConfig,
        val: EvalSet | None,
        meta: Mapping[str, Any],
    ) -> None:
        self.model = model
        self.space = space
        self.config = config
        self.val = val
        self.meta = dict(meta)
        self._loss = torch.zeros(())

    def train_step(self, x: torch.Tensor, y: torch.Tensor, amp: Amp) -> torch.Tensor:
        with amp.autocast():
            logits = self.model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)
        amp.backward(loss)
        self._loss = loss.detach()
        return self._loss

    def step_losses(self) -> dict[str, torch.Tensor]:
        return {str(self.model.subnet): self._loss}

    def evaluate(self) -> dict[str, float]:
        assert self.val is not None, "validation runs on rank 0 only"
        return {"val_acc": accuracies(self.model, self.val, {"val_acc": None})["val_acc"]}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        pass

    def save(self, path: Path, extra: dict[str, Any]) -> None:
        payload = {
            "format": FORMAT,
            "version": 1,
            "space": self.space.to_dict(),
            "subnet": self.model.subnet.to_dict(),
            "model": self.model.state_dict(),
            "train": self.config.to_dict(),
            **self.meta,
            **extra,
        }
        atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _readme(
    mode: str,
    subnet: Subnet,
    splits: DataSplits,
    test_acc: float,
    source: SubnetSource,
    has_onnx: bool,
) -> str:
    """The README of ``<run_dir>/subnet``: what was trained, its accuracy, its preprocessing."""
    how = "fine-tuned from inherited weights" if mode == "finetune" else "trained from scratch"
    lines = [
        f"# Subnet {subnet}",
        "",
        f"{how.capitalize()} on {splits.name} (`python -m supernet.train mode={mode}`; "
        f"{source.description}): test accuracy {test_acc:.4f}.",
        "",
        "```python",
        "from supernet import load_subnet",
        "",
        'model = load_subnet("<this directory>")  # a torch.nn.Module in eval mode',
        "```",
    ]
    if splits.preprocessing is not None:
        lines += ["", *splits.preprocessing.readme_section(has_onnx=has_onnx)]
    return "\n".join(lines) + "\n"


def train_subnet(config: RunConfig | Mapping[str, Any], hooks: Hooks | None = None) -> SubnetResult:
    """Fine-tune (``mode=finetune``) or train from scratch (``mode=scratch``) one subnet."""
    if not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    if config.mode not in ("finetune", "scratch"):
        raise ValueError(f"train_subnet is for mode=finetune|scratch, got mode={config.mode}")
    with DistEnv.setup(config.device, config.threads) as env:
        return _train(config, env, hooks)


def _train(config: RunConfig, env: DistEnv, hooks: Hooks | None) -> SubnetResult:
    run_dir = Path(env.broadcast_object(str(config.run_dir)))
    claim_run_dir(run_dir, "subnet", config.mode)
    train = config.train
    source = resolve_source(config)
    space, subnet = source.space, source.subnet
    # The export's model.onnx (decided now: onnx=true without its packages fails before training)
    with_onnx = onnx_wanted(config.onnx) if env.is_main else False
    path = resume_path(config.resume, run_dir, CHECKPOINT)
    payload = None
    if path is not None:
        payload = load_checkpoint(path, expected_format=FORMAT)
        check_same_settings(payload, path, data=config.data, train=train, seed=config.seed)
        _check_same_subnet(payload, path, config.mode, space, subnet)
        if env.is_main and not with_onnx and (run_dir / EXPORT_DIR / ONNX_FILE).is_file():
            # The run's export already has an ONNX file (an earlier onnx=true): the export is
            # written again from the same weights, and keeps it unless its packages are gone.
            with_onnx = onnx_wanted("auto")
    elif not config.resume and (run_dir / RESULT_FILE).exists():
        raise ConfigError(f"{run_dir} already holds a finished run; choose another hydra.run.dir")
    splits = build_data(config.data)
    splits.check_fits(space)

    seed_everything(config.seed)
    model = family_of(space).build_model(space, subnet, drop_path_rate=train.drop_path)
    if payload is not None:
        model.load_state_dict(payload["model"])
    elif source.weights is not None:
        model.load_state_dict(source.weights)
    model.to(env.device)
    env.broadcast_module(model)
    torch.manual_seed(config.seed + 1 + env.rank)

    val = EvalSet(splits.val, train.eval_batch_size, train.num_workers) if env.is_main else None
    test = EvalSet(splits.test, train.eval_batch_size, train.num_workers) if env.is_main else None
    initial: dict[str, float | None] = {"val": None, "test": None}
    if payload is not None:
        initial = {"val": payload.get("initial_val_acc"), "test": payload.get("initial_test_acc")}
    elif config.mode == "finetune" and val is not None and test is not None:
        initial["val"] = accuracies(model, val, {"a": None})["a"]
        initial["test"] = accuracies(model, test, {"a": None})["a"]
        log.info("inherited weights: val acc %.4f, test acc %.4f", initial["val"], initial["test"])
    if env.is_main:
        make_dir(run_dir)
        log.info(
            "%s: %s on %s, %d epoch(s), %d process(es) on %s",
            config.mode,
            source.description,
            splits.name,
            train.epochs,
            env.world_size,
            env.device,
        )
    task = SubnetTask(
        model,
        space,
        train,
        val,
        {
            "mode": config.mode,
            "data": dataclasses.asdict(config.data),
            "initial_val_acc": initial["val"],
            "initial_test_acc": initial["test"],
        },
    )
    fitted = fit(
        task,
        config=train,
        env=env,
        splits=splits,
        seed=config.seed,
        run_dir=run_dir,
        checkpoint_name=CHECKPOINT,
        resume=payload,
        hooks=hooks,
    )
    result: SubnetResult | None = None
    if env.is_main:
        assert val is not None and test is not None
        rows = fitted.rows
        val_acc = float(rows[-1]["val_acc"]) if rows else float(initial["val"] or 0.0)
        test_acc = accuracies(model, test, {"a": None})["a"]
        export = save_subnet(
            model.to("cpu").eval(),
            space,
            run_dir / EXPORT_DIR,
            metadata={
                "mode": config.mode,
                "data": config.data.name,
                "epochs": train.epochs,
                "val_acc": val_acc,
                "test_acc": test_acc,
                "source": source.description,
            },
            overwrite=True,
            preprocessing=splits.preprocessing,
            extra_files={
                "README.md": _readme(config.mode, subnet, splits, test_acc, source, with_onnx)
            },
            onnx=with_onnx,
        )
        result = SubnetResult(
            run_dir=run_dir,
            mode=config.mode,
            space=space,
            subnet=subnet,
            test_acc=test_acc,
            val_acc=val_acc,
            epochs=train.epochs,
            params=complexity.params(space, subnet),
            macs=complexity.macs(space, subnet),
            export_dir=export,
            initial_val_acc=initial["val"],
            initial_test_acc=initial["test"],
            wall_s=float(rows[-1]["wall_s"]) if rows else 0.0,
            metrics=rows,
        )
        text = json.dumps(result.to_dict(), indent=2) + "\n"
        atomic_write_text(run_dir / RESULT_FILE, text)
        log.info(
            "%s %s: test acc %.4f (val %.4f)%s; exported to %s",
            config.mode,
            subnet,
            test_acc,
            val_acc,
            f", inherited test acc {initial['test']:.4f}" if initial["test"] is not None else "",
            export,
        )
    result = env.broadcast_object(result)
    assert result is not None
    return result
