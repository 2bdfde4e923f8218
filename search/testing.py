"""Test helpers (as ``optuna.testing``): a throwaway PostgreSQL cluster on loopback, and the
worker processes of a search (for tests and scripts that kill them).

    with PostgresCluster() as pg:
        storage_url = pg.url          # postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres
    child_pids(search_process.pid)   # its worker processes (search.n_workers > 1)

Needs the PostgreSQL server binaries (Debian: ``apt-get install postgresql``). Run as root, the
server runs as the ``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresCluster", "child_pids", "find_postgres_bin", "running_pids"]


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest version first, or None."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def child_pids(pid: int) -> list[int]:
    """The live child processes of ``pid``, oldest first (Linux: read from ``/proc``)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it exited meanwhile
        # After the command name: state, ppid, ..., starttime (the 20th field after it).
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            children.append((int(fields[19]), int(stat.parent.name)))
    return [child for _, child in sorted(children)]


def running_pids(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (zombies do not count)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """Start a fresh cluster in a temporary directory; stop and delete it on exit."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        found = bin_dir or find_postgres_bin()
        if found is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bin_dir = found
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="vitnas-pg-"))
        self.data = self.dir / "data"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_postgres, *args], check=True, capture_output=True, text=True, cwd=self.dir
        )

    def start(self) -> PostgresCluster:
        self._run(
            str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"
        )
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.dir / "log"),
            "-o",
            options,
            "start",
        )
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(
                str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
            )
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
