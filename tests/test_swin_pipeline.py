"""The Swin family through the same command lines as the ViT family, on the digits data:
train (sandwich with distillation, resume) → search (every sampler, FLOP and latency budgets) →
trials table → export (safetensors + ONNX) → load_subnet → fine-tune → report → rank, and the
one-line errors of mixing families."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from search.results import read_trials
from search.runner import run_search
from supernet import SearchSpace, Subnet, complexity, load_subnet
from supernet.checkpoint import load_checkpoint, load_supernet
from supernet.data import build_data
from supernet.swin import SwinSpace, SwinSubnet
from supernet.train import Hooks, train_supernet

ROOT = Path(__file__).resolve().parents[1]
TINY = ("data.train_subset=128", "train.batch_size=32", "train.num_random=1")
SPACE = SwinSpace.preset("swin_digits")


def run(module: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def swin_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A swin_digits supernet trained through the command line (sandwich + distillation)."""
    run_dir = tmp_path_factory.mktemp("swin") / "train"
    common = (f"hydra.run.dir={run_dir}", "space=swin_digits", "train.distill=true", *TINY)
    ok(run("supernet.train", *common, "train.epochs=2"))
    return run_dir


class Killed(Exception):
    pass


def _config(run_dir: Path, **train: object) -> dict[str, object]:
    return {
        "run_dir": str(run_dir),
        "space": "swin_digits",
        "threads": 1,
        "data": {"name": "digits", "train_subset": 128},
        "train": {"epochs": 2, "batch_size": 32, "num_random": 1, **train},
    }


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["uniform", "sandwich"])
def test_resume_equals_uninterrupted(tmp_path: Path, strategy: str) -> None:
    def stop_after_first(row: dict[str, object]) -> None:
        if row["epoch"] == 1:
            raise Killed

    whole = train_supernet(_config(tmp_path / "whole", strategy=strategy))
    with pytest.raises(Killed):
        train_supernet(
            _config(tmp_path / "cut", strategy=strategy), Hooks(on_epoch=stop_after_first)
        )
    resumed = train_supernet({**_config(tmp_path / "cut", strategy=strategy), "resume": True})
    assert resumed.resumed_from == 1 and resumed.epochs == 2
    a = load_checkpoint(whole.checkpoint)["model"]
    b = load_checkpoint(resumed.checkpoint)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_processes_train_the_same_swin_supernet(tmp_path: Path) -> None:
    """torchrun with 2 ranks (gloo) gives the weights one process gives with the whole batch."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "supernet.train",
            "space=swin_digits",
            "data.train_subset=128",
            "data.augment.crop_padding=0",  # as the single-process run below
            "train.epochs=2",
            "train.batch_size=32",
            "train.strategy=uniform",
            "threads=1",
            f"hydra.run.dir={tmp_path / 'ddp'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    payload = load_checkpoint(tmp_path / "ddp" / "supernet.pt")
    assert payload["world_size"] == 2 and payload["space"]["family"] == "swin"
    train = {k: v for k, v in payload["train"].items() if k in ("lr", "warmup_epochs", "min_lr")}
    single = train_supernet(_config(tmp_path / "single", strategy="uniform", **train))
    reference = load_checkpoint(single.checkpoint)["model"]
    for key, value in payload["model"].items():
        torch.testing.assert_close(value, reference[key], atol=2e-5, rtol=1e-4, msg=key)


@pytest.mark.slow
def test_training_writes_a_swin_checkpoint(swin_run: Path) -> None:
    payload = load_checkpoint(swin_run / "supernet.pt")
    assert payload["space"]["family"] == "swin" and payload["epoch"] == 2
    assert payload["reference_subnets"]["middle"]["family"] == "swin"
    net, _ = load_supernet(swin_run)
    assert isinstance(net.space, SwinSpace) and net.space == SPACE
    metrics = pd.read_csv(swin_run / "metrics.csv")
    assert list(metrics["epoch"]) == [1, 2]
    assert metrics["val_acc_largest"].iloc[-1] > 0.1  # better than chance after two epochs


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2", "gp", "autoformer_evolution"])
def test_every_sampler_searches_a_swin_supernet(
    swin_run: Path, tmp_path: Path, sampler: str
) -> None:
    low, high = (complexity.flops(SPACE, s) for s in (SPACE.smallest(), SPACE.largest()))
    budget = (low + high) // 2
    group = {"search": "autoformer_evolution"} if sampler == "autoformer_evolution" else {}
    cfg = {
        "supernet": str(swin_run / "supernet.pt"),
        "budget": {"flops": budget},
        "search": {
            "n_trials": 8,
            "sampler": sampler,
            "progress": False,
            "plots_png": False,
            **({"autoformer_evolution": {"population_size": 4, "parents": 2}} if group else {}),
        },
    }
    result = run_search(cfg, tmp_path)
    frame = result.trials
    assert len(frame) == 8 and set(frame["family"]) == {"swin"}
    assert {"window_size", "embed_dim", "num_heads"} <= set(frame.columns)
    evaluated = frame[frame["val_acc"].notna()]
    assert len(evaluated) >= 1 and (evaluated["flops"] <= budget).all()
    for _, row in frame.iterrows():  # every row reads back as the subnet it was priced as
        subnet = Subnet.from_row(row)
        assert isinstance(subnet, SwinSubnet)
        assert complexity.flops(SPACE, subnet) == row["flops"]
    again = read_trials(tmp_path)
    assert SPACE.subnet_from_row(again.iloc[0]) == Subnet.from_row(frame.iloc[0])


@pytest.mark.slow
def test_cli_search_export_finetune_report_rank(swin_run: Path, tmp_path: Path) -> None:
    search_dir = tmp_path / "search"
    ok(
        run(
            "search",
            f"supernet={swin_run}",
            "budget.macs=400k",
            "search.n_trials=6",
            "search.progress=false",
            "search.plots_png=false",
            f"hydra.run.dir={search_dir}",
        )
    )
    assert (search_dir / "pareto.html").is_file() and (search_dir / "history.html").is_file()
    export = tmp_path / "best"
    ok(run("search.export", str(search_dir), "trial=best", f"out={export}"))
    meta = yaml.safe_load((export / "subnet.yaml").read_text())
    assert meta["space"]["family"] == "swin" and meta["subnet"]["family"] == "swin"
    model = load_subnet(export)
    assert type(model).__name__ == "SwinTransformer"
    x = build_data({"name": "digits"}).val[0][0].unsqueeze(0)
    net, _ = load_supernet(swin_run)
    subnet = SPACE.subnet_from_dict(meta["subnet"])
    with torch.inference_mode():
        assert torch.allclose(model(x), net.eval()(x, subnet), atol=1e-5)
    if (export / "model.onnx").is_file():  # onnx is in the dev extra
        import onnxruntime

        session = onnxruntime.InferenceSession(str(export / "model.onnx"))
        (got,) = session.run(["logits"], {"images": x.numpy()})
        with torch.inference_mode():
            assert np.abs(got - model(x).numpy()).max() <= 1e-4

    finetune = tmp_path / "finetune"
    ok(
        run(
            "supernet.train",
            "mode=finetune",
            f"subnet={export}",
            f"hydra.run.dir={finetune}",
            "train.epochs=1",
            *TINY[:2],
        )
    )
    assert type(load_subnet(finetune / "subnet")).__name__ == "SwinTransformer"

    report = ok(run("search.report", str(search_dir), f"out={tmp_path / 'report'}"))
    assert "1 run" in report.stdout or (tmp_path / "report").is_dir()

    rank = tmp_path / "rank"
    ok(
        run(
            "search.rank",
            f"supernet={swin_run}",
            "k=3",
            "finetune=false",
            "train.epochs=1",
            "png=false",
            f"hydra.run.dir={rank}",
        )
    )
    table = pd.read_csv(rank / "rank.csv")
    assert len(table) == 3 and "window_size" in table.columns


@pytest.mark.slow
def test_latency_calibration_and_budget(swin_run: Path, tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    ok(
        run(
            "search.latency",
            "calibrate",
            "space=swin_digits",
            "n_samples=8",
            "n_holdout=4",
            "repeats=2",
            "rounds=1",
            "progress=false",
            "threads=1",
            f"profile_dir={profiles}",
            f"hydra.run.dir={tmp_path / 'calibration'}",
        )
    )
    cfg = {
        "supernet": str(swin_run / "supernet.pt"),
        "budget": {"latency_ms": 1000.0},
        "search": {
            "n_trials": 4,
            "sampler": "random",
            "progress": False,
            "plots_png": False,
            "latency_profile": str(profiles),
            "latency_threads": 1,
        },
    }
    frame = run_search(cfg, tmp_path / "search").trials
    assert frame["latency_ms"].notna().all() and (frame["latency_ms"] > 0).all()


@pytest.mark.slow
def test_mixing_families_is_one_line(swin_run: Path, tmp_path: Path) -> None:
    vit_subnet = tmp_path / "vit.yaml"
    SearchSpace.preset("digits").smallest().to_yaml(vit_subnet)
    line = error_line(
        run(
            "supernet.train",
            "mode=finetune",
            f"supernet={swin_run}",
            f"subnet={vit_subnet}",
            f"hydra.run.dir={tmp_path / 'a'}",
        )
    )
    assert "a vit subnet was given to a swin search space" in line
    wrong_window = SPACE.largest().to_dict()
    wrong_window["window_size"][1] = [4] * len(wrong_window["window_size"][1])
    bad = tmp_path / "window.yaml"
    bad.write_text(yaml.safe_dump(wrong_window))
    line = error_line(
        run(
            "supernet.train",
            "mode=finetune",
            f"supernet={swin_run}",
            f"subnet={bad}",
            f"hydra.run.dir={tmp_path / 'b'}",
        )
    )
    assert "window_size[1][0] = 4 is not a choice of stage 1 block 0" in line
    assert "a window that covers it is written 2" in line
    stages = SPACE.largest().to_dict()
    for key in ("embed_dim", "depth", "num_heads", "mlp_ratio", "window_size"):
        stages[key] = stages[key][:1]
    short = tmp_path / "stages.yaml"
    short.write_text(yaml.safe_dump(stages))
    line = error_line(
        run(
            "supernet.train",
            "mode=finetune",
            f"supernet={swin_run}",
            f"subnet={short}",
            f"hydra.run.dir={tmp_path / 'c'}",
        )
    )
    assert "the subnet has 1 stage(s) but this space has 2" in line


def test_a_sampled_swin_subnet_is_never_a_duplicate_name() -> None:
    """Windows that cover their map collapse into one choice, so draws never repeat a network
    under two names."""
    rng = random.Random(0)
    seen: dict[str, SwinSubnet] = {}
    for _ in range(500):
        s = SPACE.sample(rng)
        model_key = str(s)
        assert seen.setdefault(model_key, s) == s
        assert all(w <= SPACE.stage_resolution(i) for i, ws in enumerate(s.window_size) for w in ws)
