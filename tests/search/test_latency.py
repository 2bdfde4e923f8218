from __future__ import annotations

import itertools
import json
import os
import random
import resource
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from search.latency import (
    FEATURES,
    LatencyError,
    LatencyProfile,
    ProfileError,
    calibrate,
    calibrate_command,
    count_subnets,
    designed_sample,
    device_description,
    feature_matrix,
    find_profile,
    fit_nnls,
    holdout_sample,
    kendall_tau,
    latency_features,
    mape,
    measure_latency,
    steady_allocator,
    write_latency_report,
)
from search.latency.__main__ import _argv_with_command
from search.latency.measure import interleaved_samples
from search.latency.report import REPORT_FILES
from supernet import SearchSpace, SubnetConfig, complexity
from supernet.common.errors import quoted
from supernet.vit import VisionTransformer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spread_space() -> SearchSpace:
    """A tiny space whose subnets differ a lot in cost: 6x in width, 3x in depth, 4x in heads."""
    return SearchSpace(
        embed_dim=(16, 96),
        depth=(1, 2, 3),
        num_heads=(1, 4),
        mlp_ratio=(1.0, 4.0),
        img_size=16,
        patch_size=4,
        in_chans=1,
        num_classes=4,
        head_dim=16,
        name="spread",
    )


@pytest.fixture(scope="module")
def calibration(spread_space: SearchSpace):
    torch.manual_seed(0)
    return calibrate(
        spread_space,
        batch_size=8,
        threads=1,
        n_samples=16,
        n_holdout=12,
        warmup=1,
        repeats=5,
        rounds=3,
        seed=1,
        progress=False,
    )


# -- measurement ---------------------------------------------------------------------------------
def test_measure_latency_returns_positive_median_and_records_conditions(tiny_space) -> None:
    model = VisionTransformer.from_space(tiny_space, tiny_space.largest()).train()
    threads_before = torch.get_num_threads()
    result = measure_latency(model, space=tiny_space, batch_size=3, threads=1, warmup=1, repeats=4)
    assert result.median_ms > 0
    assert len(result.samples_ms) == 4 and all(t > 0 for t in result.samples_ms)
    assert result.median_ms == pytest.approx(float(np.median(result.samples_ms)))
    assert result.q1_ms <= result.median_ms <= result.q3_ms
    assert result.batch_size == 3
    assert result.input_shape == (3, tiny_space.in_chans, tiny_space.img_size, tiny_space.img_size)
    assert result.threads == 1
    assert result.device == "cpu"
    assert result.device_name == device_description("cpu")
    assert result.device_name.startswith("cpu: ")
    assert result.torch_version == torch.__version__
    assert (result.warmup, result.repeats, result.clock) == (1, 4, "wall")
    assert result.allocator == steady_allocator()
    datetime.fromisoformat(result.timestamp)
    assert json.loads(json.dumps(result.to_dict()))["median_ms"] == result.median_ms
    # the caller's settings are restored
    assert torch.get_num_threads() == threads_before
    assert model.training


def test_measure_latency_takes_an_input_shape() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    result = measure_latency(model, input_shape=(3, 4), batch_size=2, warmup=0, repeats=2)
    assert result.input_shape == (2, 3, 4)
    assert result.threads == torch.get_num_threads()
    with pytest.raises(TypeError, match="exactly one"):
        measure_latency(model, repeats=1)


def test_cpu_clock_times_the_thread(tiny_space) -> None:
    model = VisionTransformer.from_space(tiny_space, tiny_space.largest())
    result = measure_latency(model, space=tiny_space, threads=1, repeats=3, clock="cpu")
    assert result.clock == "cpu" and result.threads == 1
    assert result.median_ms > 0
    with pytest.raises(LatencyError, match=r"clock=cpu .* needs device=cpu and threads=1"):
        measure_latency(model, space=tiny_space, threads=2, clock="cpu")


@pytest.mark.skipif(not steady_allocator().startswith("glibc"), reason="glibc only")
def test_steady_allocator_stops_page_faults_between_forwards() -> None:
    # Megabytes of activations per forward: glibc would otherwise trim and re-fault them.
    space = SearchSpace.preset("fashion_mnist")
    model = VisionTransformer.from_space(space, space.largest()).eval()
    x = torch.randn(16, 1, 28, 28)
    assert steady_allocator() == steady_allocator()  # idempotent
    with torch.inference_mode():
        for _ in range(3):
            model(x)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            model(x)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 1000, faults  # ~7,600 over these 5 forwards without it


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repeats": 0}, "repeats must be an integer >= 1"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"warmup": -1}, "warmup must be an integer >= 0"),
        ({"threads": 0}, "threads must be a positive integer"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"device": "meta"}, "on cpu or cuda, not 'meta'"),
        ({"clock": "tsc"}, "clock must be wall or cpu"),
    ],
)
def test_measure_latency_rejects_bad_settings(tiny_space, kwargs, message) -> None:
    model = VisionTransformer.from_space(tiny_space, tiny_space.smallest())
    with pytest.raises(LatencyError, match=message):
        measure_latency(model, space=tiny_space, **kwargs)


@pytest.mark.parametrize("rounds", [0, -1, True, 2.0, "3"])
def test_round_counts_are_checked_the_same_everywhere(tiny_space, rounds) -> None:
    """calibrate() and the interleaved sampler under it refuse what the CLI refuses, before any
    model is built."""
    message = f"rounds must be an integer >= 1, got {quoted(rounds)}; pass rounds=3"
    with pytest.raises(LatencyError) as info:
        calibrate(tiny_space, n_samples=2, n_holdout=1, rounds=rounds, progress=False)
    assert str(info.value) == message
    built: list[int] = []
    with pytest.raises(LatencyError) as info:
        interleaved_samples([1, 2], built.append, torch.zeros(1), warmup=0, repeats=1,
                            rounds=rounds, rng=random.Random(0), progress=False)  # fmt: skip
    assert str(info.value) == message
    assert built == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_without_cuda_is_a_clear_error(tiny_space) -> None:
    model = VisionTransformer.from_space(tiny_space, tiny_space.smallest())
    with pytest.raises(LatencyError, match="CUDA is not available"):
        measure_latency(model, space=tiny_space, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measure_latency_on_cuda(tiny_space) -> None:
    model = VisionTransformer.from_space(tiny_space, tiny_space.largest())
    result = measure_latency(model, space=tiny_space, device="cuda", warmup=2, repeats=5)
    assert result.median_ms > 0
    assert result.device == "cuda:0"
    assert result.device_name == f"cuda: {torch.cuda.get_device_name(0)}"


# -- features and design -------------------------------------------------------------------------
def test_features_are_the_complexity_terms(tiny_space) -> None:
    subnet = SubnetConfig(embed_dim=12, depth=2, num_heads=(1, 3), mlp_ratio=(2.5, 1.0))
    cost = complexity.breakdown(tiny_space, subnet)
    f = latency_features(tiny_space, subnet, batch_size=4)
    assert list(f) == list(FEATURES)
    n = tiny_space.num_tokens  # 4 patches + CLS
    assert n == 5
    assert f["intercept"] == 1 and f["blocks"] == 2
    assert f["attn_proj_macs"] == 4 * cost.attn_proj_macs
    assert f["attn_matmul_macs"] == 4 * 2 * n * n * (1 + 3) * 4
    assert f["mlp_macs"] == 4 * 2 * n * 12 * (30 + 12)
    assert f["embed_macs"] == 4 * (cost.patch_embed_macs + cost.head_macs)
    mac_terms = ("embed_macs", "attn_proj_macs", "attn_matmul_macs", "mlp_macs")
    assert sum(f[k] for k in mac_terms) == 4 * cost.macs
    assert f["block_elems"] == 4 * n * 12 * 2
    assert f["attn_elems"] == 4 * n * (1 + 3) * 4
    assert f["mlp_elems"] == 4 * n * (30 + 12)
    matrix = feature_matrix(tiny_space, [subnet, tiny_space.smallest()], 4)
    assert matrix.shape == (2, len(FEATURES))
    assert list(matrix[0]) == list(f.values())


def test_count_subnets_matches_enumeration(tiny_space) -> None:
    per_layer = list(itertools.product(tiny_space.num_heads, tiny_space.mlp_ratio))
    total = sum(
        len(list(itertools.product(per_layer, repeat=d)))
        for _ in tiny_space.embed_dim
        for d in tiny_space.depth
    )
    assert count_subnets(tiny_space) == total == 2 * (6 + 36 + 216)


def test_designed_sample_spans_the_space_and_holdout_is_disjoint(tiny_space) -> None:
    rng = random.Random(0)
    train = designed_sample(tiny_space, 24, rng)
    held = holdout_sample(tiny_space, 20, rng, exclude=train)
    assert len(set(train)) == 24 and len(set(held)) == 20
    assert not set(train) & set(held)
    assert all(tiny_space.contains(s) for s in train + held)
    macs = [complexity.macs(tiny_space, s) for s in train]
    assert min(macs) == complexity.macs(tiny_space, tiny_space.smallest())
    assert max(macs) == complexity.macs(tiny_space, tiny_space.largest())
    # every (width, depth) cell is visited, and both head extremes and both MLP extremes occur
    assert {(s.embed_dim, s.depth) for s in train} == set(
        itertools.product(tiny_space.embed_dim, tiny_space.depth)
    )
    assert {h for s in train for h in s.num_heads} == set(tiny_space.num_heads)
    assert {r for s in train for r in s.mlp_ratio} == set(tiny_space.mlp_ratio)
    # the design reaches further into both ends of the cost range than uniform sampling does
    uniform = [complexity.macs(tiny_space, s) for s in held]
    assert min(macs) <= min(uniform) and max(macs) >= max(uniform)


def test_design_refuses_more_subnets_than_the_space_holds() -> None:
    small = SearchSpace(embed_dim=(8,), depth=(1,), num_heads=(1, 2), mlp_ratio=(1.0,), img_size=4,
                        patch_size=2, head_dim=4)  # fmt: skip
    assert count_subnets(small) == 2
    assert len(designed_sample(small, 2, random.Random(0))) == 2
    with pytest.raises(LatencyError, match="holds only 2"):
        designed_sample(small, 3, random.Random(0))
    with pytest.raises(LatencyError, match="holds only 2"):
        holdout_sample(small, 2, random.Random(0), exclude=[small.smallest()])


# -- fitting -------------------------------------------------------------------------------------
def test_fit_nnls_recovers_nonnegative_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(30), rng.uniform(1, 10, 30), rng.uniform(1e6, 1e8, 30)])
    true = np.array([0.5, 0.2, 3e-8])
    coef = fit_nnls(x, x @ true)
    np.testing.assert_allclose(coef, true, rtol=1e-6)
    # a term that only ever *lowers* latency is clipped at zero, not made negative
    y = x @ np.array([0.5, 0.0, 3e-8]) - 0.01 * x[:, 1]
    assert np.all(fit_nnls(x, y) >= 0)


def test_metrics() -> None:
    assert mape([110, 90], [100, 100]) == pytest.approx(10.0)
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)


# -- the predictor -------------------------------------------------------------------------------
def test_predictor_ranks_held_out_subnets(calibration, spread_space) -> None:
    table, profile = calibration.table, calibration.profile
    held = table[table["split"] == "holdout"]
    assert len(held) == 12 and (table["split"] == "train").sum() == 16
    assert (table["measured_ms"] > 0).all()
    # the held-out subnets span a wide cost range, so ranking them is a real test
    assert held["macs"].max() > 5 * held["macs"].min()
    tau = profile.metrics["holdout_kendall_tau"]
    assert tau == pytest.approx(kendall_tau(held["predicted_ms"], held["measured_ms"]))
    assert tau > 0.5, calibration.summary()
    assert profile.metrics["holdout_mape_pct"] == pytest.approx(
        mape(held["predicted_ms"], held["measured_ms"]), rel=1e-4
    )
    assert all(c >= 0 for c in profile.coefficients.values())
    # the profile predicts what the table says it predicted
    subnets = calibration.subnets("holdout")
    assert len(subnets) == 12 and all(spread_space.contains(s) for s in subnets)
    np.testing.assert_allclose(
        profile.predict_many(spread_space, subnets), held["predicted_ms"], rtol=1e-9
    )
    assert (profile.batch_size, profile.threads, profile.device) == (8, 1, "cpu")
    assert profile.measurement["clock"] == "wall"
    assert profile.measurement["allocator"] == steady_allocator()
    assert (table["measured_ms"] == table["wall_ms"]).all() and (table["cpu_ms"] > 0).all()
    assert profile.device_name == device_description("cpu")


def test_profile_round_trips(calibration, spread_space, tmp_path) -> None:
    profile = calibration.profile
    path = profile.save(tmp_path / "profile.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["profile.yaml"]  # no temporary file left
    loaded = LatencyProfile.load(path)
    assert loaded == profile
    subnet = spread_space.largest()
    assert loaded.predict_ms(spread_space, subnet) == profile.predict_ms(spread_space, subnet)
    assert loaded.predict_ms(spread_space, subnet) > loaded.predict_ms(
        spread_space, spread_space.smallest()
    )


def test_profile_measures_under_its_own_conditions(calibration, spread_space) -> None:
    profile = calibration.profile
    model = VisionTransformer.from_space(spread_space, spread_space.largest())
    result = profile.measure(model, warmup=1, repeats=3)
    assert result.median_ms > 0
    assert (result.batch_size, result.threads, result.clock) == (8, 1, "wall")
    assert result.device_name == profile.device_name


def test_report_files(calibration, tmp_path) -> None:
    paths, notices = write_latency_report(calibration, tmp_path / "report")
    assert LatencyProfile.load(paths["profile"]) == calibration.profile
    table = pd.read_csv(paths["table"])
    assert len(table) == 28 and {"measured_ms", "predicted_ms", "split"} <= set(table.columns)
    html = paths["html"].read_text()
    assert "plotly" in html and "held-out" in html
    assert 'src="plotly.min.js"' in html and (tmp_path / "report" / "plotly.min.js").is_file()
    assert ("png" in paths) != bool(notices)
    assert not [p for p in (tmp_path / "report").iterdir() if p.name.startswith(".")]


def test_profile_load_errors(calibration, tmp_path) -> None:
    with pytest.raises(ProfileError, match=r"not found.*python -m search\.latency calibrate"):
        LatencyProfile.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        LatencyProfile.load(bad)
    bad.write_text("a: 1\n")
    with pytest.raises(ProfileError, match="is not a latency profile"):
        LatencyProfile.load(bad)
    data = calibration.profile.to_dict()
    for change, message in (
        ({"version": 99}, "version 99"),
        ({"coefficients": {**data["coefficients"], "blocks": -1.0}}, "must be >= 0: blocks"),
        ({"coefficients": {"intercept": 1.0}}, "missing: blocks"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"space": {"embed_dim": []}}, "invalid search space"),
        ({"space": {**data["space"], "depth": [0]}}, "depth choices must be positive"),
    ):
        bad.write_text(yaml.safe_dump({**data, **change}))
        with pytest.raises(ProfileError, match=message):
            LatencyProfile.load(bad)


# -- finding a profile for a search --------------------------------------------------------------
def test_find_profile_resolves_and_explains(calibration, spread_space, tmp_path) -> None:
    profile = calibration.profile
    newer = replace(profile, created="9999-01-01T00:00:00+00:00")
    profile.save(tmp_path / "a.yaml")
    newer.save(tmp_path / "b.yaml")
    (tmp_path / "notes.yaml").write_text("not: a profile\n")
    assert find_profile(tmp_path, spread_space, batch_size=8, threads=1) == newer
    assert find_profile(tmp_path / "a.yaml", spread_space, batch_size=8, threads=1) == profile

    with pytest.raises(ProfileError) as info:
        find_profile(tmp_path / "a.yaml", spread_space, batch_size=1, threads=1)
    assert "batch size 8, not 1" in str(info.value)
    with pytest.raises(ProfileError, match="2 threads"):
        find_profile(tmp_path, spread_space, batch_size=8, threads=2)
    other = replace(spread_space, depth=(1, 2))
    with pytest.raises(ProfileError, match="differs in depth"):
        find_profile(tmp_path / "a.yaml", other, batch_size=8, threads=1)
    with pytest.raises(ProfileError, match=r"differs from .* in depth"):
        profile.predict_ms(other, other.smallest())


def test_a_gpu_profile_predicts_on_a_machine_without_one(
    calibration, spread_space, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calibrated on the GPU box, searched on a CPU one: the profile's GPU is the target."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu = replace(calibration.profile, device="cuda:0", device_name="cuda: NVIDIA H200")
    gpu.save(tmp_path / "h200.yaml")
    calibration.profile.save(tmp_path / "cpu.yaml")
    assert find_profile(tmp_path / "h200.yaml", spread_space, device="cuda", batch_size=8) == gpu
    assert find_profile(tmp_path, spread_space, device="cuda", batch_size=8) == gpu
    with pytest.raises(ProfileError, match="device 'cuda:0', not 'cpu'"):
        find_profile(tmp_path / "h200.yaml", spread_space, device="cpu", batch_size=8, threads=1)
    with pytest.raises(ProfileError, match="device 'cpu', not 'cuda'"):
        find_profile(tmp_path / "cpu.yaml", spread_space, device="cuda", batch_size=8)
    # two GPUs' profiles and no GPU here to choose by: the user names the file
    replace(gpu, device_name="cuda: NVIDIA A100").save(tmp_path / "a100.yaml")
    with pytest.raises(ProfileError, match=r"2 GPUs .*pass latency_profile=") as info:
        find_profile(tmp_path, spread_space, device="cuda", batch_size=8)
    assert "\n" not in str(info.value)
    with pytest.raises(LatencyError, match="cpu or cuda, not 'mps'"):
        find_profile(tmp_path, spread_space, device="mps", batch_size=8)


def test_missing_profile_message_says_how_to_calibrate(tmp_path) -> None:
    space = SearchSpace.preset("fashion_mnist")
    command = "python -m search.latency calibrate space=fashion_mnist device=cpu batch_size=32"
    for where in (tmp_path, tmp_path / "missing"):
        with pytest.raises(ProfileError) as info:
            find_profile(where, space, batch_size=32, threads=2)
        message = str(info.value)
        assert "\n" not in message
        assert f"`{command} threads=2`" in message
        assert "no latency profile" in message and "batch size 32" in message
    custom = replace(space, embed_dim=(64,))
    assert "supernet=<your supernet.pt>" in calibrate_command(custom, batch_size=1)


# -- command line --------------------------------------------------------------------------------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "search.latency", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_cli_calibrate_then_measure(tmp_path) -> None:
    common = ("space=digits", "threads=1", "progress=false", f"profile_dir={tmp_path}/profiles")
    run = _cli(
        "calibrate", *common, "batch_size=2", "n_samples=6", "n_holdout=4", "warmup=0",
        "repeats=1", "rounds=2", f"out={tmp_path}/out", f"hydra.run.dir={tmp_path}/hydra",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "held-out MAPE" in run.stdout and "Kendall tau" in run.stdout
    out = tmp_path / "out"
    profile = LatencyProfile.load(out / "latency_profile.yaml")
    assert (profile.batch_size, profile.threads, profile.space.name) == (2, 1, "digits")
    assert len(pd.read_csv(out / "latency_measurements.csv")) == 10
    # plotly.js is not inlined but written once beside the HTML, which loads it from there
    assert (out / "latency_scatter.html").stat().st_size < 200_000
    assert (out / "plotly.min.js").stat().st_size > 3_000_000
    filed = list((tmp_path / "profiles").glob("*.yaml"))
    assert len(filed) == 1 and LatencyProfile.load(filed[0]) == profile

    run = _cli("measure", *common, "batch_size=2", "subnet=smallest", "repeats=2",
               f"hydra.run.dir={tmp_path}/m", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    record = yaml.safe_load((tmp_path / "m" / "latency_measurement.yaml").read_text())
    assert record["measurement"]["median_ms"] > 0 and record["measurement"]["batch_size"] == 2
    assert record["predicted_ms"] > 0  # the profile filed above was found
    # what it printed is in the run directory's log too
    assert "written:" in (tmp_path / "m" / "latency.log").read_text()
    assert not list((tmp_path / "m").glob("__main__.log"))

    # out= holding an earlier run's results: refused before anything is timed or written, unless
    # overwrite=true
    before = (out / "latency_profile.yaml").read_bytes()
    again = ("calibrate", *common, "batch_size=2", "n_samples=6", "n_holdout=4", "warmup=0",
             "repeats=1", "rounds=2", f"out={out}", f"hydra.run.dir={tmp_path}/h2")  # fmt: skip
    run = _cli(*again, cwd=tmp_path)
    assert run.returncode == 2
    earlier = [n for n in REPORT_FILES.values() if (out / n).exists()]  # the PNG needs Chromium
    assert earlier[:3] == [
        "latency_profile.yaml",
        "latency_measurements.csv",
        "latency_scatter.html",
    ]
    assert run.stderr.strip() == (
        f"error: {out} holds an earlier calibrate's results ({', '.join(earlier)}); give another "
        "out=, or pass overwrite=true to replace them"
    )
    assert (out / "latency_profile.yaml").read_bytes() == before
    run = _cli(*again, "overwrite=true", "seed=1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (out / "latency_profile.yaml").read_bytes() != before


def test_cli_user_error_is_one_line(tmp_path) -> None:
    run = _cli("calibrate", "space=digits", "batch_size=0", f"hydra.run.dir={tmp_path}/h",
               cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        "error: batch_size must be an integer >= 1, got 0; pass batch_size=1"
    )
    assert not (tmp_path / "latency_profiles").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("rounds=0", "rounds must be an integer >= 1, got 0; pass rounds=3"),
        ("n_holdout=0", "n_holdout must be an integer >= 1, got 0; pass n_holdout=16"),
        ("progress=maybe", "progress must be auto, true or false, got 'maybe'"),
    ],
)
def test_cli_checks_every_option_before_timing(tmp_path, option: str, message: str) -> None:
    """measure does not use rounds or n_holdout, but a bad value there is refused too."""
    run = _cli("measure", "space=digits", option, f"out={tmp_path}/out",
               f"hydra.run.dir={tmp_path}/h", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().startswith(f"error: {message}"), run.stderr
    assert not (tmp_path / "out").exists()


def test_cli_needs_a_command() -> None:
    assert _argv_with_command(["prog", "calibrate", "a=1"]) == ["prog", "command=calibrate", "a=1"]
    assert _argv_with_command(["prog", "--help"]) == ["prog", "--help"]
    with pytest.raises(SystemExit) as info:
        _argv_with_command(["prog", "calibrat", "a=1"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:  # two commands: not the last one silently
        _argv_with_command(["prog", "measure", "command=calibrate"])
    assert info.value.code == 2


def test_measure_takes_middle_an_export_directory_and_its_subnet_yaml(
    tmp_path, monkeypatch
) -> None:
    from omegaconf import OmegaConf

    from search.latency import __main__ as cli
    from supernet import Space, family_of
    from supernet.saved_model import save_subnet

    digits, swin = Space.preset("digits"), Space.preset("swin_digits")
    subnet = swin.sample(random.Random(0))
    export = save_subnet(family_of(swin).build_model(swin, subnet), swin, tmp_path / "export")

    def resolve(choice: str, space: Space, given: bool = False) -> tuple[Space, object]:
        monkeypatch.setattr(cli, "_space_given", lambda: given)
        return cli._subnet(OmegaConf.create({"subnet": choice, "supernet": None}), space)

    assert resolve("middle", digits) == (digits, digits.middle())
    # an export brings its own space (here a Swin one, the configured default being a ViT's)
    assert resolve(str(export), digits) == (swin, subnet)
    assert resolve(str(export / "subnet.yaml"), digits) == (swin, subnet)
    assert resolve(str(export), swin, given=True) == (swin, subnet)
    with pytest.raises(LatencyError, match=r"subnet of another search space.*leave out space="):
        resolve(str(export), digits, given=True)
    with pytest.raises(LatencyError, match=r"holds no subnet\.yaml; give an export directory"):
        resolve(str(tmp_path), digits)
    with pytest.raises(LatencyError, match="subnet must be smallest, middle, largest, an export"):
        resolve(str(tmp_path / "nope"), digits)
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(LatencyError, match=r"empty\.yaml is empty; give an export directory"):
        resolve(str(tmp_path / "empty.yaml"), digits)
    (tmp_path / "list.yaml").write_text("[1, 2]\n")
    with pytest.raises(LatencyError, match=r"list\.yaml holds no mapping of fields; give an"):
        resolve(str(tmp_path / "list.yaml"), digits)


def test_cli_refuses_space_overrides_that_would_be_ignored(tmp_path, random_checkpoint) -> None:
    """space.* changes the space= preset; with supernet= (or an export, which brings its own
    space) it was silently ignored."""
    run = _cli("measure", f"supernet={random_checkpoint}", "space.img_size=16", "repeats=1",
               f"hydra.run.dir={tmp_path}/h", cwd=tmp_path)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"error: space.img_size=16 changes the space= preset, but supernet={random_checkpoint} "
        "measures the checkpoint's own space (digits_small); drop space.img_size=16, or measure "
        "space=<preset> with them instead of supernet="
    )
    assert not (tmp_path / "h" / "latency_measurement.yaml").exists()
