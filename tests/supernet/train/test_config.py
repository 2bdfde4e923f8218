from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hydra import compose, initialize_config_dir

from supernet.data import DataConfig
from supernet.space import PRESETS_DIR
from supernet.train import ConfigError, RunConfig, TrainConfig
from supernet.train.app import run_config

CONF = PRESETS_DIR.parent


def _compose(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def test_defaults_are_one_source_of_truth() -> None:
    """conf/train.yaml's defaults equal the dataclasses' defaults (API and CLI agree)."""
    config = run_config(_compose(), "/tmp/x", [])
    assert config.train == TrainConfig()
    assert config.data == dataclasses.replace(
        DataConfig(), augment=dataclasses.replace(DataConfig().augment, crop_padding=1)
    )
    assert config.mode == "supernet" and config.space is not None
    assert config.space.name == "digits" and config.threads == 1
    uniform = run_config(_compose("train=uniform"), "/tmp/x", []).train
    assert uniform == dataclasses.replace(TrainConfig(), strategy="uniform")
    # train.num_random is a sandwich option; the uniform preset leaves it at its one default
    assert uniform.num_random == TrainConfig().num_random


@pytest.mark.parametrize("data", ["digits", "fashion_mnist", "cifar10", "cifar100", "imagefolder"])
def test_every_data_option_composes(data: str) -> None:
    config = run_config(_compose(f"data={data}"), "/tmp/x", [])
    assert config.data.name == data


def test_subnet_modes_take_the_space_from_the_subnet_unless_given() -> None:
    cfg = _compose("mode=scratch", "subnet=largest")
    assert run_config(cfg, "/tmp/x", ["mode=scratch", "subnet=largest"]).space is None
    given = ["mode=scratch", "subnet=largest", "space=fashion_mnist"]
    config = run_config(_compose(*given), "/tmp/x", given)
    assert config.space is not None and config.space.name == "fashion_mnist"


def _run(**values: Any) -> RunConfig:
    return RunConfig.from_dict({"run_dir": "/tmp/x", "space": "digits", **values})


def test_bad_values_are_named_in_one_message() -> None:
    with pytest.raises(ConfigError) as info:
        _run(train={"epochs": 0, "lr": -1, "precision": "fp8", "grad_clip": 0})
    message = str(info.value)
    assert "\n" not in message
    for part in (
        "train.epochs must be an integer ≥ 1, got 0",
        "train.lr must be a positive number, got -1.0",
        "train.precision must be one of auto, fp32, bf16, fp16, got 'fp8'",
        "train.grad_clip must be a positive number or null, got 0.0",
    ):
        assert part in message
    with pytest.raises(ConfigError, match=r"unknown option\(s\) train\.epoch;"):
        _run(train={"epoch": 3})
    with pytest.raises(ConfigError, match="mode must be one of supernet, finetune, scratch"):
        _run(mode="retrain")
    with pytest.raises(ConfigError, match="subnet= is for mode=finetune or mode=scratch"):
        _run(subnet="largest")
    with pytest.raises(ConfigError, match="onnx=true is for mode=finetune or mode=scratch"):
        _run(onnx=True)
    assert _run(onnx="auto").onnx == "auto"  # (auto: whatever the mode makes)
    with pytest.raises(ConfigError, match="mode=scratch starts from random"):
        _run(mode="scratch", subnet="largest", supernet="x.pt")
    with pytest.raises(ConfigError, match="threads must be a positive integer or null"):
        _run(threads=0)
    with pytest.raises(ConfigError, match="resume must be true, false, auto or a checkpoint path"):
        _run(resume="")


def test_finetune_may_run_zero_epochs_others_may_not() -> None:
    assert _run(mode="finetune", subnet="largest", train={"epochs": 0}).train.epochs == 0
    with pytest.raises(ConfigError, match=r"train\.epochs must be an integer ≥ 1"):
        _run(mode="scratch", subnet="largest", train={"epochs": 0})


def test_integers_for_float_options() -> None:
    """``train.lr=1`` on a command line arrives as an int: it means 1.0."""
    config = _run(train={"lr": 1, "weight_decay": 0})
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert isinstance(config.train.weight_decay, float)
