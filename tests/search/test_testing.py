from __future__ import annotations

import os
import subprocess
import sys

import optuna
import sqlalchemy

from search.testing import child_pids


def test_postgres_cluster_serves_an_optuna_storage(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("select 1")).scalar() == 1
    engine.dispose()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=postgres_url, study_name="smoke")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(optuna.load_study(study_name="smoke", storage=postgres_url).trials) == 3


def test_child_pids_lists_live_children_oldest_first() -> None:
    sleepers = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])]
    sleepers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        assert child_pids(os.getpid())[-2:] == [p.pid for p in sleepers]
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
    assert not set(child_pids(os.getpid())) & {p.pid for p in sleepers}
