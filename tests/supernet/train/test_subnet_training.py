from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from supernet import CheckpointError, SearchSpace, Supernet, load_subnet, save_subnet
from supernet.checkpoint import save_checkpoint
from supernet.data import build_data
from supernet.evaluation import accuracy, materialize
from supernet.train import ConfigError, reference_subnets, train_subnet

from .conftest import Factory

SPACE = SearchSpace.preset("digits")


@pytest.fixture
def supernet_path(tmp_path: Path) -> Path:
    torch.manual_seed(7)
    path = tmp_path / "sn" / "supernet.pt"
    save_checkpoint(path, Supernet(SPACE))
    return path


def _subnet_run(tiny_run: Factory, mode: str, subnet: str, **values: Any) -> dict[str, Any]:
    config = tiny_run(mode, epochs=values.pop("epochs", 1))
    config.update(mode=mode, subnet=subnet, space=values.pop("space", None), **values)
    return config


def _test_acc(model: torch.nn.Module) -> float:
    x, y = materialize(build_data({"name": "digits"}).test)
    return accuracy(model, x, y)


def test_finetune_from_supernet(tiny_run: Factory, supernet_path: Path) -> None:
    config = _subnet_run(tiny_run, "finetune", "middle", supernet=str(supernet_path), epochs=2)
    result = train_subnet(config)
    middle = reference_subnets(SPACE)["middle"]
    assert result.subnet == middle and result.space == SPACE and result.epochs == 2
    # The starting point really was the supernet's slice of weights.
    inherited = Supernet(SPACE)
    inherited.load_state_dict(torch.load(supernet_path, weights_only=True)["model"])
    assert result.initial_test_acc == _test_acc(inherited.extract(middle))
    # Reported: result.json, metrics.csv, and an export that loads on its own.
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["test_acc"] == result.test_acc and saved["mode"] == "finetune"
    assert saved["subnet"] == middle.to_dict() and saved["params"] == result.params > 0
    model = load_subnet(result.export_dir)
    assert model.subnet == middle and _test_acc(model) == result.test_acc
    # The export carries the preprocessing of the data it was trained on.
    assert model.preprocessing == build_data(config["data"]).preprocessing
    assert "## Preprocessing" in (result.export_dir / "README.md").read_text()
    assert len((result.run_dir / "metrics.csv").read_text().splitlines()) == 3
    assert sorted(p.name for p in result.run_dir.iterdir()) == [
        "checkpoint.pt",
        "metrics.csv",
        "result.json",
        "subnet",
    ]


def test_finetune_zero_epochs_is_the_inherited_accuracy(
    tiny_run: Factory, tmp_path: Path, supernet_path: Path
) -> None:
    inherited = Supernet(SPACE)
    inherited.load_state_dict(torch.load(supernet_path, weights_only=True)["model"])
    export = save_subnet(inherited.extract(SPACE.smallest()), SPACE, tmp_path / "export")
    result = train_subnet(_subnet_run(tiny_run, "finetune", str(export), epochs=0))
    assert result.test_acc == result.initial_test_acc == _test_acc(load_subnet(export))
    trained = load_subnet(result.export_dir).state_dict()
    for k, v in load_subnet(export).state_dict().items():
        assert torch.equal(trained[k], v), k


def test_scratch_from_a_subnet_yaml(tiny_run: Factory, tmp_path: Path) -> None:
    path = tmp_path / "arch.yaml"
    SPACE.smallest().to_yaml(path)
    with pytest.raises(ConfigError, match="names no search space: pass space=<preset>"):
        train_subnet(_subnet_run(tiny_run, "scratch", str(path)))
    result = train_subnet(_subnet_run(tiny_run, "scratch", str(path), space="digits", epochs=2))
    assert result.mode == "scratch" and result.initial_test_acc is None
    assert result.subnet == SPACE.smallest() and 0.0 <= result.test_acc <= 1.0
    assert [row["epoch"] for row in result.metrics] == [1, 2]
    # The same recipe and seed from scratch twice: the same model.
    again = train_subnet(
        {
            **_subnet_run(tiny_run, "scratch", str(path), space="digits", epochs=2),
            "run_dir": str(tmp_path / "again"),
        }
    )
    assert again.test_acc == result.test_acc


def test_subnet_errors(tiny_run: Factory, tmp_path: Path, supernet_path: Path) -> None:
    bare = tmp_path / "arch.yaml"
    SPACE.largest().to_yaml(bare)
    with pytest.raises(ConfigError, match="mode=finetune needs inherited weights"):
        train_subnet(_subnet_run(tiny_run, "finetune", str(bare), space="digits"))
    with pytest.raises(ConfigError, match="no such file or directory"):
        train_subnet(_subnet_run(tiny_run, "scratch", str(tmp_path / "nope.yaml")))
    other = SearchSpace.preset("fashion_mnist")
    with pytest.raises(ConfigError, match=r"name different search spaces \(embed_dim: "):
        train_subnet(
            _subnet_run(
                tiny_run, "finetune", "largest", supernet=str(supernet_path), space=other.to_dict()
            )
        )
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({**SPACE.largest().to_dict(), "embed_dim": 40}))
    with pytest.raises(ConfigError, match="embed_dim 40 is not a choice of this space"):
        train_subnet(_subnet_run(tiny_run, "scratch", str(wrong), space="digits"))
    truncated = tmp_path / "bad.pt"
    truncated.write_bytes(supernet_path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        train_subnet(_subnet_run(tiny_run, "finetune", "largest", supernet=str(truncated)))


def test_subnet_resume_equals_uninterrupted(tiny_run: Factory, supernet_path: Path) -> None:
    from supernet.train import Hooks

    class Killed(Exception):
        pass

    def kill(e: int, s: int, loss: float) -> None:
        if (e, s) == (1, 2):
            raise Killed

    base = _subnet_run(tiny_run, "finetune", "largest", supernet=str(supernet_path), epochs=3)
    whole = train_subnet({**base, "run_dir": base["run_dir"] + "-whole"})
    with pytest.raises(Killed):
        train_subnet(base, Hooks(on_step=kill))
    assert not (Path(base["run_dir"]) / "result.json").exists()
    resumed = train_subnet({**base, "resume": True})
    a, b = load_subnet(whole.export_dir).state_dict(), load_subnet(resumed.export_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.test_acc == whole.test_acc
    assert resumed.initial_test_acc == whole.initial_test_acc


def test_finetune_with_onnx_true_exports_a_checked_onnx_file(
    tiny_run: Factory, tmp_path: Path, supernet_path: Path
) -> None:
    """onnx=true: the fine-tuned model's export holds model.onnx, which scores the test accuracy
    on the test split as the pipeline feeds it, and carries the preprocessing in its metadata."""
    ort = pytest.importorskip("onnxruntime")
    config = _subnet_run(
        tiny_run, "finetune", "smallest", supernet=str(supernet_path), epochs=1, onnx=True
    )
    result = train_subnet(config)
    onnx_file = result.export_dir / "model.onnx"
    recorded = yaml.safe_load((result.export_dir / "subnet.yaml").read_text())["metadata"]
    assert recorded["onnx"]["file"] == "model.onnx" and recorded["onnx"]["max_abs_diff"] <= 1e-4
    assert "model.onnx" in (result.export_dir / "README.md").read_text()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    x, y = materialize(build_data(config["data"]).test)
    (logits,) = session.run(["logits"], {"images": x.numpy()})
    with torch.inference_mode():
        want = load_subnet(result.export_dir)(x)
    assert (torch.from_numpy(logits) - want).abs().max() <= 1e-4
    correct = int((torch.from_numpy(logits).argmax(1) == y).sum())
    assert correct == round(result.test_acc * len(y))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["divide_by"]) == 16.0  # digits' pixel scale, from the preprocessing
    # Resumed with the default onnx=false (the run is finished: nothing is trained again), the
    # export is written again and keeps its ONNX file, the same model's.
    again = train_subnet({**config, "onnx": False, "resume": True})
    assert again.test_acc == result.test_acc and onnx_file.is_file()
    recorded = yaml.safe_load((again.export_dir / "subnet.yaml").read_text())["metadata"]
    assert recorded["onnx"]["file"] == "model.onnx"
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (again_logits,) = session.run(["logits"], {"images": x.numpy()})
    assert (torch.from_numpy(again_logits) - want).abs().max() <= 1e-4


def test_onnx_option_is_checked_before_training(tiny_run: Factory, supernet_path: Path) -> None:
    config = _subnet_run(tiny_run, "finetune", "smallest", supernet=str(supernet_path), onnx="x")
    with pytest.raises(ConfigError, match="onnx must be auto, true or false, got 'x'"):
        train_subnet(config)
