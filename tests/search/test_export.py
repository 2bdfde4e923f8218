from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pandas as pd
import pytest
import torch

from search.export import export_subnet, pick_trial
from search.results import read_trials
from search.runner import SearchResult
from supernet import SubnetConfig, load_subnet
from supernet.checkpoint import load_supernet
from supernet.common.atomic import default_mode
from supernet.common.errors import CheckpointError, UserError
from supernet.saved_model import read_subnet_yaml


def subnet_of(row: pd.Series) -> SubnetConfig:
    return SubnetConfig(
        int(row["embed_dim"]),
        int(row["depth"]),
        tuple(json.loads(row["num_heads"])),
        tuple(json.loads(row["mlp_ratio"])),
    )


def test_export_best_loads_with_the_supernets_logits(
    searched: SearchResult, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "best"
    with caplog.at_level(logging.INFO):  # as a Hydra command's root logger is
        result = export_subnet(searched.run_dir, "best", out)
    # the ONNX exporter's INFO lines (dozens: one per folded constant) stay out of the log
    assert not [r for r in caplog.records if r.name.startswith(("onnx_ir", "onnxscript"))]
    best = searched.best
    assert best is not None and result.trial == int(best["number"])
    assert "most accurate" in result.reason
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "model.onnx",
        "model.safetensors",
        "subnet.yaml",
    ]
    model = load_subnet(out)
    net, _ = load_supernet(read_subnet_yaml(out)[2]["source"]["checkpoint"])
    x = torch.randn(5, 1, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(model(x), net(x, subnet_of(best)), atol=1e-5)
    space, subnet, meta = read_subnet_yaml(out)
    assert subnet == subnet_of(best) and space == net.space
    assert meta["val_acc"] == pytest.approx(float(best["val_acc"]))
    assert meta["costs"]["flops"] == int(best["flops"])
    assert (
        meta["source"]["trial"] == result.trial and len(meta["source"]["checkpoint_sha256"]) == 64
    )
    assert meta["onnx"]["max_abs_diff"] <= 1e-4
    # ONNX parity, checked here independently of the exporter's own check.
    session = onnxruntime.InferenceSession(
        str(out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    for batch in (1, 7):
        images = np.random.default_rng(batch).standard_normal((batch, 1, 8, 8), dtype=np.float32)
        (got,) = session.run(None, {"images": images})
        with torch.inference_mode():
            want = model(torch.from_numpy(images)).numpy()
        assert np.abs(got - want).max() <= 1e-4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_pick_best_under_a_cost_and_by_number(searched: SearchResult) -> None:
    frame = read_trials(searched.run_dir)
    ok = frame[frame["feasible"] & frame["val_acc"].notna()]
    limit = float(ok["flops"].median())
    row, reason = pick_trial(frame, "best", {"flops": limit})
    within = ok[ok["flops"] <= limit]
    assert row["flops"] <= limit and row["val_acc"] == within["val_acc"].max()
    assert "with flops <=" in reason
    number = int(ok["number"].iloc[-1])
    row, reason = pick_trial(frame, number)
    assert row["number"] == number and reason == f"trial {number} as asked"
    with pytest.raises(UserError, match=r"no trial 99 in this run \(trials 0 to 15\)"):
        pick_trial(frame, 99)
    with pytest.raises(UserError, match="trial must be best or a trial number, got 'top'"):
        pick_trial(frame, "top")
    with pytest.raises(UserError, match="no feasible evaluated trial with flops <= 1 FLOPs"):
        pick_trial(frame, "best", {"flops": 1.0})
    assert frame["latency_ms"].isna().all()  # searched without a latency profile
    with pytest.raises(UserError) as info:  # it said 'the cheapest has latency_ms n/a: raise it'
        pick_trial(frame, "best", {"latency_ms": 5.0})
    assert str(info.value) == (
        "this run has no latency_ms for its trials (its search predicted none); drop "
        "latency_ms=, or calibrate a latency profile (`python -m search.latency calibrate`) and "
        "search again"
    )


def test_an_infeasible_or_unfinished_trial_is_exported_only_when_asked(
    searched: SearchResult,
) -> None:
    frame = read_trials(searched.run_dir)
    over = int(frame.loc[frame["feasible"] == False, "number"].iloc[0])  # noqa: E712
    with pytest.raises(UserError, match=rf"trial {over} \(D.*\) broke the search's budget"):
        pick_trial(frame, over)
    row, reason = pick_trial(frame, over, allow_infeasible=True)
    assert row["number"] == over and reason.endswith("(never evaluated: it was over budget)")
    running = frame.copy()
    running.loc[running["number"] == over, "state"] = "RUNNING"
    with pytest.raises(UserError, match=rf"trial {over} .* is RUNNING, not COMPLETE"):
        pick_trial(running, over, allow_infeasible=True)


def test_export_never_clobbers_and_checks_the_checkpoint(
    searched: SearchResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    # overwrite=true replaces the whole directory: only an earlier export's, never one that
    # holds anything else (out=~ would have deleted a home)
    for overwrite in (False, True):
        with pytest.raises(UserError, match=r"holds keep\.txt, not an export's files; .*new or"):
            export_subnet(searched.run_dir, "best", out, onnx=False, overwrite=overwrite)
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # nor one that holds an export's file names only (a user's README.md), a link, or "."
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "README.md").write_text("my notes")
    with pytest.raises(UserError, match=r"holds README\.md, not a whole export; overwrite=true"):
        export_subnet(searched.run_dir, "best", notes, onnx=False, overwrite=True)
    assert (notes / "README.md").read_text() == "my notes"
    (tmp_path / "link").symlink_to(out)
    with pytest.raises(UserError, match=r"out=.*link is a symbolic link \(to .*taken\)"):
        export_subnet(searched.run_dir, "best", tmp_path / "link", onnx=False, overwrite=True)
    monkeypatch.chdir(notes)
    for here in (".", "./", str(notes)):
        with pytest.raises(UserError, match=r"is the current directory, which a write would"):
            export_subnet(searched.run_dir, "best", here, onnx=False, overwrite=True)
    with pytest.raises(UserError, match=r"ends in '\.\.'; give the directory by its own name"):
        export_subnet(searched.run_dir, "best", notes / "x" / "..", onnx=False, overwrite=True)
    assert sorted(p.name for p in notes.iterdir()) == ["README.md"]
    out = tmp_path / "earlier"
    first = export_subnet(searched.run_dir, 0, out, onnx=False, allow_infeasible=True)
    with pytest.raises(UserError, match=r"exists and is not empty; .*overwrite=true"):
        export_subnet(searched.run_dir, "best", out, onnx=False)
    assert read_subnet_yaml(out)[1] == first.subnet
    replaced = export_subnet(searched.run_dir, "best", out, onnx=False, overwrite=True)
    assert sorted(p.name for p in replaced.directory.iterdir()) == [
        "README.md",
        "model.safetensors",
        "subnet.yaml",
    ]
    assert read_subnet_yaml(out)[1] == replaced.subnet
    other = tmp_path / "other.pt"
    shutil.copy(read_subnet_yaml(out)[2]["source"]["checkpoint"], other)
    with other.open("ab") as f:
        f.write(b"\0")
    with pytest.raises(CheckpointError, match=r"is not the checkpoint this run searched"):
        export_subnet(searched.run_dir, "best", tmp_path / "x", supernet=other, onnx=False)
    assert not (tmp_path / "x").exists()
    data = other.read_bytes()
    other.write_bytes(data[: len(data) // 3])  # the searched checkpoint, cut short
    with pytest.raises(CheckpointError, match=r"other\.pt is damaged, truncated or corrupt \("):
        export_subnet(searched.run_dir, "best", tmp_path / "x", supernet=other, onnx=False)
    assert not (tmp_path / "x").exists()
    with pytest.raises(CheckpointError, match=r"null is not a regular file \(a pipe, a device"):
        export_subnet(searched.run_dir, "best", tmp_path / "x", supernet="/dev/null", onnx=False)
    (tmp_path / "a_dir").mkdir()  # it said 'the searched checkpoint a_dir/supernet.pt is gone'
    with pytest.raises(CheckpointError, match=r"a_dir is a directory without a supernet\.pt"):
        export_subnet(searched.run_dir, "best", tmp_path / "x", supernet=tmp_path / "a_dir")
    # The searched file itself, changed in place (no supernet= given): emptied, as a full disk
    # leaves it, it is damaged; replaced by a whole file, it has changed (not 'another one').
    source = Path(read_subnet_yaml(out)[2]["source"]["checkpoint"])
    original = source.read_bytes()
    try:
        source.write_bytes(b"")
        with pytest.raises(CheckpointError, match=r"supernet\.pt is damaged, truncated or corrupt"):
            export_subnet(searched.run_dir, "best", tmp_path / "x", onnx=False)
        source.write_bytes(data)
        with pytest.raises(
            CheckpointError, match=r"supernet\.pt, the checkpoint this run searched, has changed"
        ):
            export_subnet(searched.run_dir, "best", tmp_path / "x", onnx=False)
    finally:
        source.write_bytes(original)
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="is not a search run directory"):
        export_subnet(tmp_path, "best", tmp_path / "y")


def test_outputs_get_ordinary_permissions(searched: SearchResult, tmp_path: Path) -> None:
    """Not mkstemp's/mkdtemp's owner-only modes: what any new file gets under the umask."""
    out = export_subnet(searched.run_dir, 0, tmp_path / "t0", onnx=False).directory
    assert out.stat().st_mode & 0o777 == default_mode(directory=True)
    for path in [*out.iterdir(), searched.run_dir / "trials.csv", searched.run_dir / "pareto.html"]:
        assert path.stat().st_mode & 0o777 == default_mode(), path


def test_onnx_on_raw_digits_through_the_documented_preprocessing_scores_the_tools_accuracy(
    searched: SearchResult, tmp_path: Path
) -> None:
    """scikit-learn's raw digits (0..16), preprocessed with only what the export documents (the
    ONNX file's metadata, as its README shows), through onnxruntime: the accuracy the tool's own
    pipeline gives the PyTorch model."""
    from sklearn.datasets import load_digits

    from supernet.data import build_data, digits_split
    from supernet.evaluation import accuracy, materialize

    out = export_subnet(searched.run_dir, "best", tmp_path / "best").directory
    session = onnxruntime.InferenceSession(
        str(out / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["input_size"]) == [1, 8, 8] and float(meta["divide_by"]) == 16.0
    assert json.loads(meta["class_names"]) == [str(d) for d in range(10)]
    assert meta["formula"].startswith("x = (raw / divide_by - mean) / std")
    # The README's onnxruntime recipe, applied to raw images.
    readme = (out / "README.md").read_text()
    assert "## Preprocessing" in readme and "raw pixel values / 16" in readme
    assert "custom_metadata_map" in readme
    digits = load_digits()
    _, test = digits_split(len(digits.target), 0.2)
    raw, labels = digits.images[test][:, None], digits.target[test]  # (N, 1, 8, 8), 0..16
    c = json.loads(meta["input_size"])[0]
    mean = np.float32(json.loads(meta["mean"])).reshape(1, c, 1, 1)
    std = np.float32(json.loads(meta["std"])).reshape(1, c, 1, 1)
    x = (np.float32(raw) / np.float32(meta["divide_by"]) - mean) / std
    (logits,) = session.run(["logits"], {"images": x})
    onnx_acc = float((logits.argmax(1) == labels).mean())
    # The tool's pipeline: its test split, the PyTorch model.
    images, targets = materialize(build_data({"name": "digits"}).test)
    tool_acc = accuracy(load_subnet(out), images, targets)
    (naive,) = session.run(["logits"], {"images": np.float32(raw) / 16})  # the issue's [0, 1]
    naive_acc = float((naive.argmax(1) == labels).mean())
    print(f"raw digits via ONNX {onnx_acc:.4f}, tool {tool_acc:.4f}, [0, 1] only {naive_acc:.4f}")
    assert abs(onnx_acc - tool_acc) <= 1 / len(labels)  # within rounding: at most one image
    assert tool_acc > 0.3  # a trained model (chance is 0.1), so a wrong preprocessing shows
    assert naive_acc < tool_acc
    # The preprocessing is in subnet.yaml too, and load_subnet hands it over.
    assert read_preprocessing_record(out) == load_subnet(out).preprocessing.to_dict()


def read_preprocessing_record(out: Path) -> dict:
    import yaml

    return yaml.safe_load((out / "subnet.yaml").read_text())["preprocessing"]
