"""Four worker processes × 50 trials on one study, on SQLite and on PostgreSQL: 200 COMPLETE
trials with unique numbers, each worker exactly its share, and no error anywhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from omegaconf import DictConfig

from search.runner import run_search


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_four_workers_fifty_trials_each(
    backend: str,
    request: pytest.FixtureRequest,
    random_checkpoint: Path,
    search_config: Callable[..., DictConfig],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    storage = []
    if backend == "postgresql":
        storage = [f"search.storage={request.getfixturevalue('postgres_url')}"]
    cfg = search_config(
        f"supernet={random_checkpoint}",
        "search.n_workers=4",
        "search.n_trials=200",
        "search.sampler=random",
        "search.threads=1",
        f"search.study_name=concurrency-{backend}",
        *storage,
    )
    result = run_search(cfg, tmp_path)
    frame = result.trials
    assert sorted(frame["number"]) == list(range(200))  # unique, none missing, none extra
    assert set(frame["state"]) == {"COMPLETE"}
    assert frame["val_acc"].notna().all()
    # The worker processes write to this test's stderr: nothing went wrong in any of them.
    err = capfd.readouterr().err
    assert "4 worker(s)" in err  # (the capture works: the search's own header line)
    for sign in ("Traceback", "database is locked", "error", "Error", "note: worker"):
        assert sign not in err, err[-3000:]
    trials = optuna.load_study(study_name=result.study_name, storage=result.storage_url).trials
    assert sorted(Counter(t.user_attrs["worker"] for t in trials).values()) == [50] * 4
    assert len({t.user_attrs["search_run"] for t in trials}) == 1
