from __future__ import annotations

import os
import subprocess
import sys

import optuna
import pytest
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


def test_fork_server_runs_commands_as_python_would(tmp_path) -> None:
    from search.testing import ForkServer

    code = (
        "import atexit, os, sys\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "print(os.getcwd(), sys.argv[1:], 'json' in sys.modules)\n"
        "print('to stderr', file=sys.stderr)\n"
        "sys.exit(int(sys.argv[1]))\n"
    )
    with ForkServer(["json"], env={**os.environ, "MARK": "m"}) as server:
        result = server.run([sys.executable, "-c", code, "3", "x"], cwd=tmp_path)
        assert result.returncode == 3 and result.stderr == "to stderr\n"
        assert result.stdout == f"{tmp_path} ['3', 'x'] True\natexit ran\n"  # preloaded, cwd
        # -m runs a module as __main__; an uncaught exception is a traceback and status 1
        result = server.run([sys.executable, "-m", "json.tool", "--bad"], cwd=tmp_path)
        assert result.returncode == 2 and "usage:" in result.stderr
        result = server.run([sys.executable, "-c", "raise KeyError('k')"], cwd=tmp_path)
        assert result.returncode == 1 and result.stderr.splitlines()[-1] == "KeyError: 'k'"
        result = server.run([sys.executable, "-c", "import os; print(os.environ['MARK'])"], cwd=".")
        assert result.stdout == "m\n"
        with pytest.raises(subprocess.TimeoutExpired):
            server.run([sys.executable, "-c", "import time; time.sleep(60)"], cwd=".", timeout=1)
        assert server.run([sys.executable, "-c", "pass"], cwd=".").returncode == 0  # still serves
