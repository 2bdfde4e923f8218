"""A catalogue of bad inputs, each run through the real command line.

Every case must end with exit status 2 and exactly one line on stderr, ``error: ...``, naming the
problem and the fix (the ``says`` fragments), with no traceback and no half-written output: the
files it would have written do not exist, the files it found are unchanged, and no temporary file
or staging directory is left. ``debug=true`` shows the traceback instead.

The README's table of bad inputs is this list: ``python tests/test_bad_inputs.py`` prints it, and
a test checks that the README holds it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Case:
    id: str
    what: str  # the bad input, as the README lists it
    module: str  # python -m <module>
    args: tuple[str, ...]  # {name} stands for a file of the `inputs` fixture; {run}: a new dir
    says: tuple[str, ...]  # fragments of the error line: the problem, then the fix
    absent: tuple[str, ...] = ()  # outputs that must not exist afterwards
    unchanged: tuple[str, ...] = ()  # inputs that must keep every byte
    nan_at_epoch: int | None = None  # training: a NaN enters this epoch's first batch
    kept_epoch: int | None = None  # training: {run}/supernet.pt must still hold this epoch


TINY = ("data.train_subset=64", "train.epochs=1")
TRAINED = ("data.train_subset=64", "train.epochs=1", "train.batch_size=32")  # as `inputs` did

CASES = [
    # -- python -m supernet.train -------------------------------------------------------------
    Case(
        "train-space-value",
        "invalid search-space value",
        "supernet.train",
        ("hydra.run.dir={run}", "space.patch_size=3", *TINY),
        ("invalid search space: patch_size 3 does not divide img_size 8", "fix those space.*"),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-option-typo",
        "misspelt option",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lrr=0.1"),
        ("unknown option train.lrr", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "train-unparsable-override",
        "override Hydra cannot parse",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lr=[1"),
        ("cannot parse the override 'train.lr=[1'", "quote a value that holds special characters"),
        absent=("{run}",),
    ),
    Case(
        "train-bad-value",
        "option out of range",
        "supernet.train",
        ("hydra.run.dir={run}", "train.lr=-1", *TINY),
        ("train.lr must be a positive number, got -1.0",),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-unknown-preset",
        "unknown space preset",
        "supernet.train",
        ("hydra.run.dir={run}", "space=digitz"),
        ("no config space/digitz", "the choices are autoformer_base"),
        absent=("{run}",),
    ),
    Case(
        "train-resume-other-space",
        "checkpoint from another space (resume)",
        "supernet.train",
        ("hydra.run.dir={train_run}", "resume=true", "space=fashion_mnist", *TRAINED),
        (
            "was trained for another search space (embed_dim: checkpoint (32, 48, 64)",
            "ask for the space it was trained with",
        ),
        unchanged=("{train_run}/supernet.pt", "{train_run}/metrics.csv"),
    ),
    Case(
        "train-resume-truncated",
        "truncated checkpoint (resume)",
        "supernet.train",
        ("hydra.run.dir={run}", "resume={truncated}", *TRAINED),
        (
            "the file is truncated or corrupt",
            "restore it from a copy, or remove it and train again",
        ),
        absent=("{run}/supernet.pt",),
        unchanged=("{truncated}",),
    ),
    Case(
        "train-resume-crafted-pickle",
        "crafted pickle as checkpoint (never executed)",
        "supernet.train",
        ("hydra.run.dir={run}", "resume={crafted}", *TRAINED),
        (
            "refusing to load",
            "could run code when unpickled",
            "use a checkpoint written by `python -m supernet.train`",
        ),
        absent=("{run}/supernet.pt", "{pwned}"),
    ),
    Case(
        "train-resume-nothing",
        "resume without a checkpoint",
        "supernet.train",
        ("hydra.run.dir={run}", "resume=true", *TINY),
        (
            "nothing to resume: no supernet.pt in",
            "pass hydra.run.dir=<the stopped run's directory>",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-fresh-over-finished",
        "new run into a run directory that has a checkpoint",
        "supernet.train",
        ("hydra.run.dir={train_run}", *TRAINED),
        ("already exists: pass resume=true", "or choose another hydra.run.dir"),
        unchanged=("{train_run}/supernet.pt", "{train_run}/metrics.csv"),
    ),
    Case(
        "train-missing-data-root",
        "missing data root",
        "supernet.train",
        ("hydra.run.dir={run}", "data=cifar10", "data.root={missing}", *TINY),
        ("CIFAR-10 not found under", "set data.root to the folder holding cifar-10-batches-py"),
        absent=("{run}/supernet.pt", "{missing}"),
    ),
    Case(
        "train-image-size",
        "images of another size than the space",
        "supernet.train",
        ("hydra.run.dir={run}", "space=fashion_mnist", *TINY),
        (
            "data 'digits' gives 8x8 images with 1 channel(s) and 10 classes, but the search space "
            "fashion_mnist expects 28x28",
            "use data and a search space that match",
        ),
        absent=("{run}/supernet.pt",),
    ),
    Case(
        "train-nan-loss",
        "non-finite loss (keeps the last good checkpoint)",
        "supernet.train",
        ("hydra.run.dir={run}", "data.train_subset=128", "train.epochs=3"),
        (
            "training diverged: the training loss became nan at epoch 2, step 1 (subnets D64-L4",
            "still holds epoch 1, the last good one",
            "a lower train.lr (now 0.003)",
        ),
        nan_at_epoch=2,
        kept_epoch=1,
    ),
    Case(
        "train-run-dir-not-writable",
        "run directory not writable",
        "supernet.train",
        ("hydra.run.dir={a_file}/run", *TINY),
        ("cannot write the run directory", "Not a directory", "pass hydra.run.dir="),
        unchanged=("{a_file}",),
    ),
    Case(
        "finetune-subnet-outside-space",
        "subnet outside the space",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={checkpoint}", "subnet={outside}"),
        (
            "invalid subnet for this space: num_heads[0] = 3 is not a choice",
            "of this space (1, 2, 4)",
        ),
        absent=("{run}/checkpoint.pt", "{run}/subnet"),
    ),
    Case(
        "finetune-foreign-checkpoint",
        "another tool's checkpoint",
        "supernet.train",
        ("hydra.run.dir={run}", "mode=finetune", "supernet={foreign}", "subnet=smallest"),
        ("is not a supernet checkpoint of this tool", "give one written by"),
        absent=("{run}/checkpoint.pt", "{run}/subnet"),
    ),
    # -- python -m search ---------------------------------------------------------------------
    Case(
        "search-no-checkpoint",
        "no checkpoint given",
        "search",
        ("hydra.run.dir={run}",),
        ("no supernet checkpoint given", "pass supernet=<path to supernet.pt>"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-truncated-checkpoint",
        "truncated checkpoint",
        "search",
        ("hydra.run.dir={run}", "supernet={truncated}"),
        ("cannot read checkpoint", "truncated or corrupt", "restore it from a copy"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-crafted-pickle",
        "crafted pickle as checkpoint (never executed)",
        "search",
        ("hydra.run.dir={run}", "supernet={crafted}"),
        ("refusing to load", "use a checkpoint written by"),
        absent=("{run}/study.db", "{pwned}"),
    ),
    Case(
        "search-budget-below-smallest",
        "budget below the smallest subnet",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.flops=1k"),
        ("budget.flops = 1k FLOPs is below the smallest subnet", "this space spans"),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-budget-malformed",
        "malformed budget",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.flops=2X"),
        ("budget.flops must be a number like 2e6 or 2M, got '2X'",),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-unknown-sampler",
        "unknown sampler",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.sampler=cma"),
        ("unknown sampler 'cma'", "choose one of auto, nsga2, tpe, random, gp"),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-option-typo",
        "misspelt option",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.n_trails=5"),
        ("unknown option search.n_trails", "check its spelling"),
        absent=("{run}",),
    ),
    Case(
        "search-storage-unreachable",
        "storage URL unreachable",
        "search",
        (
            "hydra.run.dir={run}",
            "supernet={checkpoint}",
            "search.storage=postgresql://nobody@127.0.0.1:1/db",
        ),
        (
            "cannot open the Optuna storage 'postgresql://nobody@127.0.0.1:1/db'",
            "Connection refused",
            "check that the database server is running",
        ),
        absent=("{run}/study.db", "{run}/trials.csv"),
    ),
    Case(
        "search-storage-malformed",
        "malformed storage URL",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "search.storage=nosuchdb://x"),
        ("cannot open the Optuna storage 'nosuchdb://x'", "give an RDB URL such as"),
        absent=("{run}/trials.csv",),
    ),
    Case(
        "search-run-dir-not-writable",
        "run directory not writable",
        "search",
        ("hydra.run.dir={a_file}/run", "supernet={checkpoint}"),
        ("cannot write the run directory", "pass hydra.run.dir="),
        unchanged=("{a_file}",),
    ),
    Case(
        "search-checkpoint-data-mismatch",
        "checkpoint whose images do not fit its data (wrong image size / channels)",
        "search",
        ("hydra.run.dir={run}", "supernet={mismatched}"),
        (
            "gives 8x8 images with 1 channel(s)",
            "expects 28x28",
            "use data and a search space that match",
        ),
        absent=("{run}/study.db",),
    ),
    Case(
        "search-study-of-another-search",
        "study name of another search",
        "search",
        (
            "hydra.run.dir={search_run}",
            "supernet={checkpoint}",
            "budget.flops=5M",
            "search.study_name='{study}'",
        ),
        ("was made for another search (budget:", "pass search.study_name=<new name>"),
        unchanged=("{search_run}/trials.csv", "{search_run}/study.yaml"),
    ),
    Case(
        "search-latency-without-profile",
        "latency budget without a latency profile",
        "search",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "budget.latency_ms=5"),
        (
            "budget.latency_ms needs predicted latency",
            "calibrate one with",
            "python -m search.latency calibrate",
        ),
        absent=("{run}/study.db",),
    ),
    # -- python -m search.export --------------------------------------------------------------
    Case(
        "export-no-such-trial",
        "export of a trial that does not exist",
        "search.export",
        ("{search_run}", "trial=99", "out={run}/best"),
        ("no trial 99 in this run (trials 0 to",),
        absent=("{run}/best",),
    ),
    Case(
        "export-infeasible-trial",
        "export of an infeasible trial",
        "search.export",
        ("{search_run}", "trial={infeasible}", "out={run}/t"),
        (
            "broke the search's budget",
            "and was never evaluated",
            "export a feasible trial (trial=best), or pass allow_infeasible=true",
        ),
        absent=("{run}/t",),
    ),
    Case(
        "export-out-not-writable",
        "output directory not writable",
        "search.export",
        ("{search_run}", "out={a_file}/best", "onnx=false"),
        (
            "cannot write {a_file}/best",
            "is a file, not a directory",
            "choose a location you may write to",
        ),
        unchanged=("{a_file}",),
    ),
    Case(
        "export-out-not-empty",
        "output directory not empty",
        "search.export",
        ("{search_run}", "out={taken}", "onnx=false"),
        ("exists and is not empty", "pass overwrite=true"),
        unchanged=("{taken}/keep.txt",),
    ),
    Case(
        "export-checkpoint-changed",
        "checkpoint changed since the search",
        "search.export",
        ("{search_run}", "supernet={truncated}", "out={run}/best"),
        ("is not the checkpoint this run searched", "pass supernet=<the searched one>"),
        absent=("{run}/best",),
    ),
    Case(
        "export-option-typo",
        "misspelt option",
        "search.export",
        ("{search_run}", "trail=3", "out={run}/best"),
        ("unknown option 'trail'", "the options are trial, out"),
        absent=("{run}/best",),
    ),
    # -- python -m search.report / search.latency ---------------------------------------------
    Case(
        "report-no-runs",
        "report of a directory without search runs",
        "search.report",
        ("{taken}",),
        ("no search runs (dirs with trials.csv) under", "give the run dir of a `python -m search`"),
        absent=("{taken}/report.csv",),
    ),
    Case(
        "report-out-not-writable",
        "report output not writable",
        "search.report",
        ("{search_run}", "out={a_file}/report", "png=false"),
        ("cannot write {a_file}/report", "is a file, not a directory"),
        unchanged=("{a_file}",),
    ),
    Case(
        "latency-unknown-command",
        "unknown latency command",
        "search.latency",
        ("calibrat", "space=digits"),
        ("unknown or missing command 'calibrat'", "use python -m search.latency calibrate|measure"),
    ),
    Case(
        "latency-subnet-outside-space",
        "subnet outside the space (latency)",
        "search.latency",
        ("measure", "hydra.run.dir={run}", "space=digits", "subnet={outside}"),
        ("invalid subnet for this space: num_heads[0] = 3 is not a choice",),
        absent=("{run}/latency_measurement.yaml",),
    ),
    # -- python -m search.rank ----------------------------------------------------------------
    Case(
        "rank-band-malformed",
        "malformed cost band (ranking)",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "band.flops=10M"),
        ("band.flops must be [low, high] (like [8M,10M]) or centre+-percent (like 8.9M+-10%)",),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-band-empty",
        "cost band holding fewer than k subnets",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "band.flops=[1k,2k]", "k=5"),
        ("holds 0 distinct subnet(s)", "fewer than k=5", "widen the band or lower k"),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-seeds-repeated",
        "repeated stand-alone seeds",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "seeds=[0,0]"),
        ("seeds must be a list of distinct non-negative integers like [0,1,2], got [0, 0]",),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
    Case(
        "rank-unknown-proxy",
        "unknown proxy",
        "search.rank",
        ("hydra.run.dir={run}", "supernet={checkpoint}", "proxies=[flops,grasp]"),
        ("proxies must name each of params, flops, depth, naswot, synflow, dss at most once",),
        absent=("{run}/rank.csv", "{run}/rank.yaml", "{run}/scratch"),
    ),
]

#: How the README shows the placeholders.
SHOWN = {
    "run": "<new dir>",
    "train_run": "<finished run>",
    "checkpoint": "<supernet.pt>",
    "truncated": "<truncated.pt>",
    "crafted": "<crafted.pt>",
    "foreign": "<other tool's .pt>",
    "mismatched": "<.pt: 28x28 space, digits data>",
    "search_run": "<search run>",
    "study": "<its study>",
    "infeasible": "<over-budget trial>",
    "a_file": "<a file>",
    "outside": "<subnet.yaml outside the space>",
    "taken": "<non-empty dir>",
    "missing": "<missing path>",
    "pwned": "<marker>",
}


# -- inputs ---------------------------------------------------------------------------------------
class _Crafted:
    """Unpickling it would create the marker file: the test proves it never happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from search import run_search
    from supernet import SearchSpace, Supernet, complexity, save_checkpoint
    from supernet.train import train_supernet

    root = tmp_path_factory.mktemp("inputs")
    run = train_supernet(
        {
            "run_dir": str(root / "train"),
            "space": "digits",
            "threads": 1,
            "data": {"name": "digits", "train_subset": 64},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    checkpoint = run.checkpoint
    truncated = root / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 3])
    torch.save(
        {"format": "vitnas-supernet", "model": _Crafted(root / "pwned")}, root / "crafted.pt"
    )
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    torch.manual_seed(0)
    save_checkpoint(
        root / "mismatched.pt",
        Supernet(SearchSpace.preset("fashion_mnist")),
        data={"name": "digits"},
        train={},
    )
    space = SearchSpace.preset("digits")
    half = complexity.flops(space, space.smallest()) + complexity.flops(space, space.largest())
    searched = run_search(
        {
            "supernet": str(checkpoint),
            "budget": {"flops": half // 2},
            "search": {"n_trials": 4, "sampler": "random", "progress": False, "plots_png": False},
        },
        root / "search",
    )
    over = searched.trials.loc[searched.trials["feasible"] == False, "number"]  # noqa: E712
    (root / "a_file").write_text("not a directory\n")
    outside = {"embed_dim": 32, "depth": 2, "num_heads": [3, 1], "mlp_ratio": [2.0, 2.0]}
    (root / "outside.yaml").write_text(yaml.safe_dump(outside))
    (root / "taken").mkdir()
    (root / "taken" / "keep.txt").write_text("mine\n")
    return {
        "root": str(root),
        "train_run": str(run.run_dir),
        "checkpoint": str(checkpoint),
        "truncated": str(truncated),
        "crafted": str(root / "crafted.pt"),
        "foreign": str(root / "foreign.pt"),
        "mismatched": str(root / "mismatched.pt"),
        "search_run": str(searched.run_dir),
        "study": searched.study_name,
        "infeasible": str(int(over.iloc[0])),
        "a_file": str(root / "a_file"),
        "outside": str(root / "outside.yaml"),
        "taken": str(root / "taken"),
        "pwned": str(root / "pwned"),
    }


# -- running a case -------------------------------------------------------------------------------
#: Run a module as `python -m` does, after making one training batch NaN (a fault no command
#: line can type). argv: epoch to poison, module, arguments.
_WITH_NAN = textwrap.dedent(
    """
    import runpy, sys
    from supernet.train.supernet_training import SupernetTask

    epoch, module = int(sys.argv.pop(1)), sys.argv.pop(1)
    original, calls = SupernetTask.train_step, [0]

    def train_step(self, x, y, amp):
        if calls[0] == (epoch - 1) * 4:  # data.train_subset=128, batch 32: 4 steps per epoch
            x = x.clone()
            x[0] = float("nan")
        calls[0] += 1
        return original(self, x, y, amp)

    SupernetTask.train_step = train_step
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    """
)


def _command(case: Case, values: dict[str, str], debug: bool = False) -> list[str]:
    args = [a.format(**values) for a in case.args] + (["debug=true"] if debug else [])
    if case.nan_at_epoch is not None:
        return [sys.executable, "-c", _WITH_NAN, str(case.nan_at_epoch), case.module, *args]
    return [sys.executable, "-m", case.module, *args]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _leftovers(*roots: Path) -> list[Path]:
    """Temporary files and staging directories that an interrupted write would leave."""
    found = []
    for root in roots:
        for path in root.rglob(".*"):
            if path.name != ".hydra" and ".hydra" not in path.parts[:-1]:
                found.append(path)
    return found


@pytest.fixture
def values(inputs: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    yield {**inputs, "run": str(tmp_path / "run"), "missing": str(tmp_path / "missing")}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, values: dict[str, str], tmp_path: Path) -> None:
    unchanged = {p.format(**values): _digest(Path(p.format(**values))) for p in case.unchanged}
    result = _run(_command(case, values), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for fragment in case.says:
        assert fragment.format(**values) in lines[0], (fragment, lines[0])
    for path in case.absent:
        assert not Path(path.format(**values)).exists(), path
    for path, digest in unchanged.items():
        assert _digest(Path(path)) == digest, path
    assert not Path(values["pwned"]).exists()  # the crafted pickle never ran
    assert not _leftovers(tmp_path, Path(values["root"]))
    if case.kept_epoch is not None:
        from supernet.checkpoint import load_checkpoint

        payload = load_checkpoint(Path(values["run"]) / "supernet.pt")
        assert payload["epoch"] == case.kept_epoch
        assert all(torch.isfinite(t).all() for t in payload["model"].values())


@pytest.mark.slow
@pytest.mark.parametrize("case_id", ["search-budget-below-smallest", "export-no-such-trial"])
def test_debug_shows_the_traceback(case_id: str, values: dict[str, str], tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == case_id)
    result = _run(_command(case, values, debug=True), cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "Error: " in result.stderr  # the exception, e.g. BudgetError: budget.flops = 1k ...
    assert case.says[0].format(**values) in result.stderr


def test_at_least_twenty_distinct_cases() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)
    assert {c.module for c in CASES} == {
        "supernet.train",
        "search",
        "search.export",
        "search.report",
        "search.latency",
        "search.rank",
    }


# -- the README table -----------------------------------------------------------------------------
def _shown(text: str) -> str:
    return text.format(**SHOWN).replace("|", "\\|")


def readme_table() -> str:
    """The README's table of bad inputs, from :data:`CASES`."""
    rows = [
        "| bad input | command | the `error:` line says |",
        "|---|---|---|",
    ]
    for case in CASES:
        command = f"python -m {case.module} {' '.join(case.args)}"
        if case.nan_at_epoch is not None:
            command += f" (a NaN fed into epoch {case.nan_at_epoch})"
        says = " … ".join(case.says)
        rows.append(f"| {case.what} | `{_shown(command)}` | {_shown(says)} |")
    return "\n".join(rows) + "\n"


def test_readme_lists_every_case() -> None:
    readme = (ROOT / "README.md").read_text()
    if "| bad input | command |" not in readme:
        pytest.skip("the README has no table of bad inputs yet (python tests/test_bad_inputs.py)")
    assert readme_table() in readme, "regenerate it: python tests/test_bad_inputs.py"


if __name__ == "__main__":
    print(readme_table(), end="")
