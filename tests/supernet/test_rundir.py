"""One run directory, one kind of run: each command refuses another kind's run directory."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from supernet.common.errors import UserError
from supernet.common.rundir import (
    RUN_KINDS,
    check_not_a_runs_output,
    claim_run_dir,
    claim_sweep_dir,
    run_kind_of,
)


@pytest.mark.parametrize(("kind", "other"), list(itertools.permutations(RUN_KINDS, 2)))
def test_a_run_dir_of_another_kind_is_refused(kind: str, other: str, tmp_path: Path) -> None:
    for marker in RUN_KINDS[other].markers:
        run_dir = tmp_path / marker
        run_dir.mkdir()
        (run_dir / marker).write_text("")  # a file or, for some markers, a directory: both count
        with pytest.raises(UserError) as refused:
            claim_run_dir(run_dir, kind)
        message = str(refused.value)
        assert message.startswith(f"{run_dir} holds {RUN_KINDS[other].what} ({marker})")
        sub = RUN_KINDS[kind].subdir  # inside the run, beside an export
        own = run_dir.with_name(f"{marker}-{sub}") if other == "export" else run_dir / sub
        assert message.endswith(f"e.g. hydra.run.dir={own}")
        claim_run_dir(run_dir, other)  # its own kind continues there
        assert run_kind_of(run_dir) == (other, marker)


def test_new_empty_and_unmarked_dirs_are_anyones(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "train.log").write_text("")  # both trainings write one: it names neither
    for kind in RUN_KINDS:
        claim_run_dir(tmp_path / "missing", kind)
        claim_run_dir(tmp_path, kind)
    assert run_kind_of(tmp_path) is None


def test_the_suggested_directory_can_be_the_callers(tmp_path: Path) -> None:
    (tmp_path / "supernet.pt").write_text("")
    with pytest.raises(UserError, match=r"e\.g\. hydra\.run\.dir=.*/scratch$"):
        claim_run_dir(tmp_path, "subnet", "scratch")


def test_a_runs_own_export_is_not_a_target(tmp_path: Path) -> None:
    """search.export out=<fine-tune run>/subnet overwrite=true replaced the fine-tuned model
    beside the result.json that reports its accuracy."""
    (tmp_path / "result.json").write_text("{}")
    (tmp_path / "subnet").mkdir()
    with pytest.raises(UserError, match=r"out=x is the subnet/ of a subnet training run in "):
        check_not_a_runs_output(tmp_path / "subnet", "out=x")
    check_not_a_runs_output(tmp_path / "best", "out=x")  # a new directory there is fine
    (tmp_path / "best").mkdir()
    check_not_a_runs_output(tmp_path / "best", "out=x")


def test_a_suggested_directory_is_a_free_one(tmp_path: Path) -> None:
    """The suggestion was <run>/search even where a search already had that directory."""
    (tmp_path / "supernet.pt").write_text("")
    (tmp_path / "search").mkdir()
    (tmp_path / "search-2").mkdir()
    with pytest.raises(UserError, match=r"e\.g\. hydra\.run\.dir=.*/search-3$"):
        claim_run_dir(tmp_path, "search")
    with pytest.raises(UserError, match=r"e\.g\. out=.*/measure$"):
        claim_run_dir(tmp_path, "measure", option="out")


def test_a_users_own_subnets_folder_is_no_ranking(tmp_path: Path) -> None:
    (tmp_path / "subnets").mkdir()  # a ranking's, and a user's name for their subnet YAMLs
    (tmp_path / "subnets" / "mine.yaml").write_text("embed_dim: 32\n")
    assert run_kind_of(tmp_path) is None


def test_a_sweep_dir_and_its_jobs_are_claimed(tmp_path: Path) -> None:
    claim_sweep_dir(tmp_path / "new", "search")
    (tmp_path / "0").mkdir()
    (tmp_path / "0" / "study.yaml").write_text("")
    claim_sweep_dir(tmp_path, "search")  # a sweep of searches: its own kind
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "supernet.pt").write_text("")
    with pytest.raises(UserError) as refused:
        claim_sweep_dir(tmp_path, "search")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / '1'} holds a supernet training run (supernet.pt)")
    suggested = tmp_path / "search"
    assert message.endswith(f"of its own, e.g. hydra.sweep.dir={suggested}")


def test_the_hydra_callback_claims_by_mode_and_command() -> None:
    from supernet.common.cli import KeepRunFiles

    finetune, supernet = KeepRunFiles("finetune"), KeepRunFiles("supernet")
    assert (finetune.kind, finetune.subdir) == ("subnet", "finetune")
    assert (supernet.kind, supernet.subdir) == ("supernet", None)
    assert KeepRunFiles("measure").kind == "measure" and KeepRunFiles().kind is None
    assert KeepRunFiles("bogus").kind is None  # a bad mode= or command: the app says so


def test_a_suggestion_is_never_a_link_nor_inside_an_export(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "supernet.pt").write_text("")
    (run / "search").symlink_to(tmp_path / "nowhere")  # broken: following it failed
    with pytest.raises(UserError, match=r"e\.g\. hydra\.run\.dir=.*/run/search-2$"):
        claim_run_dir(run, "search")
    best = tmp_path / "best"
    best.mkdir()
    (best / "model.safetensors").write_text("")  # a run inside blocked re-exporting there
    with pytest.raises(UserError, match=r"e\.g\. hydra\.run\.dir=.*/best-search$"):
        claim_run_dir(best, "search")
