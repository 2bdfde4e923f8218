"""Test helpers (as ``optuna.testing``): a throwaway PostgreSQL cluster on loopback, the
worker processes of a search (for tests and scripts that kill them), and a fork server that runs
many short commands without importing torch for each.

    with PostgresCluster() as pg:
        storage_url = pg.url          # postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres
    child_pids(search_process.pid)   # its worker processes (search.n_workers > 1)

Needs the PostgreSQL server binaries (Debian: ``apt-get install postgresql``). Run as root, the
server runs as the ``postgres`` user, as PostgreSQL requires.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["ForkServer", "PostgresCluster", "child_pids", "find_postgres_bin", "running_pids"]


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


# -- commands run as forks of a process that has imported them ------------------------------------
#: The server: imports argv[1:], says "ready", then for each request line (JSON: argv as after
#: ``python``, cwd, stdout and stderr files) forks a child that runs it as ``python`` would, and
#: answers with the child's pid, then with its exit status.
_FORK_SERVER = r"""
import importlib, json, os, runpy, sys

for name in sys.argv[1:]:
    importlib.import_module(name)
requests = os.fdopen(os.dup(0), "r")
answers = os.fdopen(os.dup(1), "w", buffering=1)
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
answers.write("ready\n")


def run(request):
    requests.close()
    answers.close()
    os.chdir(request["cwd"])
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = sys.__stderr__ = open(
        2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False
    )
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)
    flag, target, *args = request["argv"]
    if flag == "-m":
        sys.argv = [target, *args]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = ["-c", *args]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    sys.exit(0)


for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        run(request)  # the child leaves by SystemExit (or an exception), as python does
    answers.write(json.dumps({"pid": pid}) + "\n")
    _, status = os.waitpid(pid, 0)
    answers.write(json.dumps({"status": os.waitstatus_to_exitcode(status)}) + "\n")
"""


#: What the commands (train, search, export, report, rank, latency) import: what a
#: :class:`ForkServer` for them preloads (none of them a module run as ``__main__``).
COMMAND_IMPORTS = [
    "torch",
    "torch._dynamo",  # (supernet.train imports it up front)
    "pandas",
    "optuna",
    "hydra",
    "sqlalchemy",
    "plotly.graph_objects",
    "supernet.train.app",
    "search.runner",
    "search.export",
    "search.rank.runner",
    "search.latency",
]


class ForkServer:
    """Runs ``python -m <module> ...`` commands as forks of one process that has already imported
    ``preload`` (torch, the package): each command skips the seconds of imports a fresh
    interpreter spends, and is otherwise the real command, in a process of its own (its exit
    status, stdout, stderr, files and atexit handlers are its own).

        with ForkServer(["torch", "search.runner"], env=env) as server:
            result = server.run([sys.executable, "-m", "search", "x=1"], cwd=tmp_path)

    Every command runs with the server's environment; ``-c <code>`` works too. Modules a command
    runs as ``__main__`` must not be in ``preload``.
    """

    def __init__(self, preload: list[str], env: dict[str, str] | None = None) -> None:
        self.env = dict(os.environ if env is None else env)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.env,
            text=True,
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        if self.process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the fork server did not start (exit {self.process.wait()})")
        self._work = Path(tempfile.mkdtemp(prefix="vitnas-fork-"))

    def run(
        self, command: list[str], cwd: str | Path, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``subprocess.run(command, cwd=cwd, capture_output=True, text=True)``, forked.
        ``command[0]`` is the interpreter (ignored: the server's own runs it)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        out, err = self._work / "stdout", self._work / "stderr"
        request = {"argv": command[1:], "cwd": str(cwd), "stdout": str(out), "stderr": str(err)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        pid = json.loads(self.process.stdout.readline())["pid"]
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            self.process.stdout.readline()
            raise subprocess.TimeoutExpired(command, timeout)
        status = json.loads(self.process.stdout.readline())["status"]
        return subprocess.CompletedProcess(
            command, status, out.read_text(errors="replace"), err.read_text(errors="replace")
        )

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
