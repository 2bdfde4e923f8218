from __future__ import annotations

import csv
import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch

from supernet import CheckpointError, SearchSpace
from supernet.checkpoint import load_checkpoint, load_supernet
from supernet.data import build_data
from supernet.train import ConfigError, Hooks, train_supernet
from supernet.train.loop import Amp

from .conftest import Factory


class Killed(Exception):
    """Stands in for the process being killed."""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("strategy", ["uniform", "sandwich"])
def test_loss_falls_and_outputs(tiny_run: Factory, strategy: str) -> None:
    config = tiny_run(strategy=strategy, epochs=8, lr=3e-3, label_smoothing=0.0)
    config["data"]["train_subset"] = 512
    result = train_supernet(config)
    losses = [row["train_loss"] for row in result.metrics]
    assert len(losses) == 8
    assert losses[-1] < losses[0] - 0.25, losses  # from chance (ln 10 = 2.30) downwards
    assert set(result.val_acc) == {"smallest", "middle", "largest"}
    # metrics.csv: one row per epoch, the three reference subnets' validation accuracy.
    rows = _rows(result.run_dir / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert {"train_loss", "lr", "images_per_s", "wall_s"} <= set(rows[0])
    for name in ("smallest", "middle", "largest"):
        assert 0.0 <= float(rows[-1][f"val_acc_{name}"]) <= 1.0
        assert float(rows[-1][f"val_acc_{name}"]) == pytest.approx(result.val_acc[name])
    assert float(rows[-1]["images_per_s"]) > 0


def test_checkpoint_contents(tiny_run: Factory) -> None:
    config = tiny_run(epochs=1)
    config["data"]["split_seed"] = 3
    result = train_supernet(config)
    assert sorted(p.name for p in result.run_dir.iterdir()) == ["metrics.csv", "supernet.pt"]
    payload = load_checkpoint(result.checkpoint)  # weights_only=True
    for key in ("format", "version", "space", "model", "data", "train", "epoch", "seed"):
        assert key in payload, key
    for key in ("optimizer", "scheduler", "rng", "task", "metrics", "reference_subnets"):
        assert key in payload, key
    assert payload["epoch"] == 1 and payload["train"]["epochs"] == 1
    assert payload["train"]["strategy"] == "sandwich"
    # The search app rebuilds the exact validation split from the checkpoint alone.
    again = build_data(payload["data"])
    original = build_data(config["data"])
    assert again.val.indices == original.val.indices  # type: ignore[attr-defined]
    assert again.val.indices != build_data({"name": "digits"}).val.indices  # type: ignore[attr-defined]
    net, _ = load_supernet(result.checkpoint, space=SearchSpace.preset("digits"))
    assert net.space == SearchSpace.preset("digits")
    # What exports of its subnets will carry: the data's preprocessing, recorded.
    assert payload["preprocessing"] == original.preprocessing.to_dict()  # type: ignore[union-attr]
    assert payload["preprocessing"]["divide_by"] == 16.0


def _train_killed(config: dict[str, Any], hooks: Hooks) -> None:
    with pytest.raises(Killed):
        train_supernet(config, hooks)


def _kill_after_epoch(epoch: int) -> Hooks:
    def on_epoch(row: dict[str, Any]) -> None:
        if row["epoch"] == epoch:
            raise Killed

    return Hooks(on_epoch=on_epoch)


def _kill_at_step(epoch: int, step: int) -> Hooks:
    def on_step(e: int, s: int, loss: float) -> None:
        if (e, s) == (epoch, step):
            raise Killed

    return Hooks(on_step=on_step)


@pytest.mark.parametrize(
    ("strategy", "kill"),
    [
        ("uniform", _kill_after_epoch(1)),  # right after the epoch-1 checkpoint
        ("sandwich", _kill_at_step(2, 1)),  # mid epoch 3: resumes from the epoch-2 checkpoint
    ],
    ids=["after-epoch", "mid-epoch"],
)
def test_resume_equals_uninterrupted(tiny_run: Factory, strategy: str, kill: Hooks) -> None:
    # Augmentation, stochastic depth and subnet sampling all draw random numbers.
    settings = {"strategy": strategy, "epochs": 3, "drop_path": 0.1}
    data = {"augment": {"crop_padding": 1, "hflip": True}}
    whole = train_supernet(tiny_run("whole", data=data, **settings))
    config = tiny_run("killed", data=data, **settings)
    _train_killed(config, kill)
    stopped_at = load_checkpoint(Path(config["run_dir"]) / "supernet.pt")["epoch"]
    assert stopped_at in (1, 2)
    resumed = train_supernet({**config, "resume": True})
    assert resumed.resumed_from == stopped_at and resumed.epochs == 3
    a = load_checkpoint(whole.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
    timing = {"images_per_s", "epoch_s", "wall_s"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in whole.metrics] == [
        {k: v for k, v in r.items() if k not in timing} for r in resumed.metrics
    ]
    assert len(_rows(resumed.run_dir / "metrics.csv")) == 3


def test_resuming_a_finished_run_trains_no_more(tiny_run: Factory) -> None:
    config = tiny_run(epochs=1)
    first = train_supernet({**config, "resume": "auto"})  # nothing to continue: starts
    assert first.resumed_from is None
    before = first.checkpoint.read_bytes()
    for resume in (True, "auto"):  # `make demo` twice: the second reports the finished run
        again = train_supernet({**config, "resume": resume})
        assert again.resumed_from == 1 and again.val_acc == first.val_acc
        assert first.checkpoint.read_bytes() == before


def test_resuming_another_runs_finished_checkpoint_saves_it_here(tiny_run: Factory) -> None:
    """A new run dir given another run's finished checkpoint has nothing to train; it said
    'saved <its dir>/supernet.pt' and wrote nothing there."""
    first = train_supernet(tiny_run(epochs=1))
    config = {**tiny_run("copy", epochs=1), "resume": str(first.checkpoint)}
    again = train_supernet(config)
    assert again.resumed_from == 1 and again.checkpoint.is_file()
    a, b = load_checkpoint(first.checkpoint), load_checkpoint(again.checkpoint)
    assert a["epoch"] == b["epoch"] == 1 and a["metrics"] == b["metrics"]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _rows(again.run_dir / "metrics.csv") == _rows(first.run_dir / "metrics.csv")
    # and the copy is a run of its own: resume=true there finds it
    assert train_supernet({**tiny_run("copy", epochs=1), "resume": True}).resumed_from == 1


def test_resume_from_a_special_file_says_what_it_is(tiny_run: Factory) -> None:
    with pytest.raises(ConfigError, match=r"/dev/null is not a regular file \(a pipe, a device"):
        train_supernet({**tiny_run(epochs=1), "resume": "/dev/null"})  # it said 'no checkpoint'


def test_resume_with_another_space_names_the_fields(tiny_run: Factory) -> None:
    config = tiny_run(epochs=1)
    train_supernet(config)
    space = dataclasses.replace(SearchSpace.preset("digits"), embed_dim=(32, 64))
    with pytest.raises(CheckpointError) as info:
        train_supernet({**config, "resume": True, "space": space.to_dict()})
    assert "was trained for another search space" in str(info.value)
    assert "embed_dim: checkpoint (32, 48, 64), requested (32, 64)" in str(info.value)
    with pytest.raises(ConfigError, match=r"train\.lr: checkpoint 0\.003, requested 0\.01"):
        train_supernet({**config, "resume": True, "train": {**config["train"], "lr": 0.01}})


def test_resume_truncated_checkpoint(tiny_run: Factory) -> None:
    config = tiny_run(epochs=1)
    path = train_supernet(config).checkpoint
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="the file is truncated or corrupt"):
        train_supernet({**config, "resume": True})


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_resume_refuses_a_crafted_pickle_without_running_it(
    tiny_run: Factory, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    config = tiny_run(epochs=1)
    run_dir = Path(config["run_dir"])
    run_dir.mkdir()
    torch.save({"format": "vitnas-supernet", "model": Evil()}, run_dir / "supernet.pt")
    with pytest.raises(CheckpointError, match="refusing to load"):
        train_supernet({**config, "resume": True})
    (run_dir / "supernet.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        train_supernet({**config, "resume": True})
    assert not marker.exists()


def test_fresh_run_never_overwrites_and_resume_needs_a_checkpoint(tiny_run: Factory) -> None:
    config = tiny_run(epochs=1)
    with pytest.raises(ConfigError, match=r"nothing to resume: no supernet\.pt in"):
        train_supernet({**config, "resume": True})
    path = train_supernet(config).checkpoint
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists; pass resume=true"):
        train_supernet(config)
    assert path.read_bytes() == before


def test_bad_values_fail_in_one_message(tiny_run: Factory) -> None:
    with pytest.raises(ConfigError, match="larger than the training set"):
        train_supernet(tiny_run(batch_size=1000))
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer ≥ 1, got -2"):
        train_supernet(tiny_run(epochs=-2))
    with pytest.raises(ConfigError, match=r"train\.strategy must be one of uniform, sandwich"):
        train_supernet(tiny_run(strategy="random"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_paths_run(tiny_run: Factory, precision: str) -> None:
    """Autocast (and fp16's loss scaler, checkpointed for resume) — on the CPU here; on CUDA
    ``precision=auto`` picks bf16, or fp16 where bf16 is unsupported."""
    config = tiny_run(precision=precision, epochs=2)
    _train_killed(config, _kill_after_epoch(1))
    saved = load_checkpoint(Path(config["run_dir"]) / "supernet.pt")["scaler"]
    assert bool(saved) == (precision == "fp16")  # the scaler's scale and growth tracker
    result = train_supernet({**config, "resume": True})
    assert result.epochs == 2 and all(0.0 <= v <= 1.0 for v in result.val_acc.values())
    amp = Amp.build(precision, torch.device("cpu"))
    assert amp.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert amp.scaler.is_enabled() == (precision == "fp16")
    assert Amp.build("auto", torch.device("cpu")).dtype is None  # fp32 on the CPU
