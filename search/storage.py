"""Optuna storage and study: a SQLite file in the run dir by default, or any RDB URL.

The study is created once, by the parent process, before any worker starts (SQLite and
PostgreSQL both race when several processes create the schema at the same time). Heartbeats mark
a trial whose worker died as failed once ``grace_period`` seconds pass without a beat, and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` queues it again with the same subnet,
so a killed worker loses no trial. The storage is a plain Optuna RDB: ``optuna-dashboard <url>``
opens it.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.engine
import sqlalchemy.exc
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from supernet.common.atomic import free_space
from supernet.common.errors import OutputError, UserError

from .optuna_adapter import configure_sqlite, set_metric_names

__all__ = [
    "STUDY_ATTR",
    "StudyMismatchError",
    "default_storage_url",
    "open_storage",
    "open_study",
    "safe_url",
    "sqlite_path",
    "storage_error",
]

#: The study user attribute holding what the study's trials depend on (checked on resume).
STUDY_ATTR = "vitnas"

#: Keys of :data:`STUDY_ATTR` that must match for a resumed study to stay meaningful.
_IDENTITY = ("checkpoint_sha256", "objectives", "budget", "val_size", "data", "latency_target")
#: Keys a study made by an earlier version lacks: not compared for such a study.
_LATER_KEYS = ("latency_target",)


class StudyMismatchError(UserError):
    """An existing study of the same name was run with another checkpoint, budget or objective."""


#: Seconds to wait for a PostgreSQL server to answer (``connect_timeout`` in the URL overrides).
CONNECT_TIMEOUT_S = 10


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def safe_url(url: str) -> str:
    """The storage URL with any password masked, for messages and tables."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url


def default_storage_url(run_dir: str | Path) -> str:
    """``sqlite:///<absolute run dir>/study.db``, with the characters a URL reserves (``?``,
    ``#``, ``%`` …) escaped, so that the database is that file whatever the directory is called."""
    path = (Path(run_dir).resolve() / "study.db").as_posix()
    return sqlalchemy.engine.URL.create("sqlite", database=path).render_as_string(
        hide_password=False
    )


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs or an in-memory one)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    database = parsed.database.removeprefix("file:")
    return None if database == ":memory:" else Path(database)


def storage_error(exc: BaseException, url: str) -> UserError | None:
    """A storage failure (the disk full, the database file damaged, the server gone) as one
    line naming the database, or None if ``exc`` is not one. Looks through the exception's
    causes: Optuna wraps the database's error in ``StorageInternalError`` (or, on a failed
    commit inside a trial, in an ``AssertionError`` raised while handling it)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    database = next((e for e in seen if isinstance(e, sqlalchemy.exc.DBAPIError)), None)
    internal = any(isinstance(e, optuna.exceptions.StorageInternalError) for e in seen)
    if database is None and not internal:
        return None
    detail = _first_line(database.orig) if database is not None and database.orig else "failed"
    path = sqlite_path(url)
    if path is None:
        return UserError(
            f"the Optuna storage {safe_url(url)!r} failed: {detail}; the trials it holds are "
            "kept: check the database server (and its disk), then run the same command again"
        )
    lowered = detail.lower()
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if "full" in lowered or "i/o error" in lowered or (free is not None and free < 2**20):
        return OutputError(
            f"cannot write {path}: no space left on the device ({detail}; "
            f"{free_space(path.parent)} free); the trials it holds are kept: free some "
            "space, then run the same command again to continue"
        )
    if "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        return UserError(
            f"the study database {path} is damaged ({detail}); restore it from a copy, or move "
            "it away and run the same command again to start a new study (trials.csv beside it "
            "keeps the trials of the last run that finished writing it)"
        )
    return UserError(
        f"cannot use the study database {path}: {detail}; check that you may write to it and "
        "its directory, then run the same command again"
    )


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 to SQLAlchemy 2.1; use psycopg2 when only it is
    installed (the ``postgres`` extra installs psycopg2-binary)."""
    if not url.startswith("postgresql://"):
        return url
    for module, driver in (("psycopg", None), ("psycopg2", "psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        return url if driver is None else f"postgresql+{driver}://" + url[len("postgresql://") :]
    return url


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 3,
) -> RDBStorage:
    """An RDB storage with heartbeats (``heartbeat_interval`` seconds; None or 0 disables them)."""
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # Several worker processes write to one file: wait for the lock instead of failing.
        engine_kwargs["connect_args"] = {"timeout": 120}
        database = sqlite_path(url)
        if database is not None:
            _refuse_damaged(database)
    elif url.startswith("postgresql") and "connect_timeout" not in url:
        # An unreachable server fails in seconds, not after the system's TCP timeout (minutes).
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():
            # Heartbeats and their retry callback are marked experimental in Optuna 5.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat: dict[str, Any] = {}
            if heartbeat_interval:
                heartbeat = {
                    "heartbeat_interval": int(heartbeat_interval),
                    "grace_period": int(grace_period) if grace_period else None,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry
                    ),
                }
            for attempt in range(3):
                try:
                    storage = RDBStorage(
                        _with_driver(url), engine_kwargs=engine_kwargs, **heartbeat
                    )
                    break
                except sqlalchemy.exc.IntegrityError:
                    # Another process created the schema at the same moment: it exists now.
                    if attempt == 2:
                        raise
                    time.sleep(0.2 * (attempt + 1))
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise UserError(
            f"cannot open the Optuna storage {safe_url(url)!r}: {_first_line(exc)}; give an RDB "
            "URL such as sqlite:///path/study.db or postgresql://user@host/db"
        ) from None
    except sqlalchemy.exc.OperationalError as exc:
        failure = storage_error(exc, url) if url.startswith("sqlite") else None
        if failure is not None and not str(failure).startswith("cannot use"):
            raise failure from None  # a full disk, a damaged file
        fix = (
            "check that the database file's directory exists and that you may write to it"
            if url.startswith("sqlite")
            else "check that the database server is running and reachable at that host and "
            "port, and that the user and the database exist"
        )
        raise UserError(
            f"cannot open the Optuna storage {safe_url(url)!r}: {_first_line(exc)}; {fix}"
        ) from None
    except ValueError as exc:
        raise UserError(f"storage settings: {exc}; check search.storage") from None
    except (sqlalchemy.exc.DatabaseError, optuna.exceptions.StorageInternalError) as exc:
        failure = storage_error(exc, url)
        if failure is None:
            raise
        raise failure from None
    if url.startswith("sqlite"):
        configure_sqlite(storage)
    return storage


def _refuse_damaged(path: Path) -> None:
    """Check an existing SQLite study file read-only before opening it for writing: a damaged
    one (truncated, overwritten) is refused as it is, not made worse by a write."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    problem = None
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=120)
        try:
            row = connection.execute("PRAGMA quick_check").fetchone()
            problem = None if row is None or row[0] == "ok" else str(row[0])
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if any(word in text for word in ("malformed", "not a database", "corrupt")):
            problem = text
    if problem is not None:
        raise UserError(
            f"the study database {path} is damaged ({problem}); restore it from a copy, or move "
            "it away and run the same command again to start a new study (trials.csv beside it "
            "keeps the trials of the last run that finished writing it)"
        )


def open_study(
    storage: RDBStorage,
    study_name: str,
    directions: Sequence[str],
    identity: Mapping[str, Any],
    *,
    create: bool = True,
    metric_names: Sequence[str] | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it when it exists and was made for the same search.

    Returns ``(study, created)``. ``identity`` is stored in the study's user attributes; a
    resumed study whose checkpoint, objectives, budget, validation set or latency target (the
    device a latency budget or objective is for) differ fails naming the difference (trials of
    two different searches must not mix). An empty study without them
    (its run was killed right after creating it) counts as created now. ``metric_names`` name
    the objectives (optuna-dashboard shows them), also in a study created without them.
    """
    try:
        study, created = _open_study(storage, study_name, directions, identity, create=create)
        if metric_names is not None:
            set_metric_names(study, list(metric_names))
        return study, created
    except (sqlalchemy.exc.DatabaseError, optuna.exceptions.StorageInternalError) as exc:
        failure = storage_error(exc, storage.url)
        if failure is None:
            raise
        raise failure from None


def _open_study(
    storage: RDBStorage,
    study_name: str,
    directions: Sequence[str],
    identity: Mapping[str, Any],
    *,
    create: bool,
) -> tuple[optuna.Study, bool]:
    existing = {s.study_name for s in storage.get_all_studies()}
    if study_name in existing:
        study = optuna.load_study(study_name=study_name, storage=storage)
        same_directions = [d.name.lower() for d in study.directions] == list(directions)
        if STUDY_ATTR not in study.user_attrs and not study.trials and same_directions:
            # Created by a run killed before it could label it: nothing in it to protect.
            study.set_user_attr(STUDY_ATTR, dict(identity))
            return study, True
        stored = study.user_attrs.get(STUDY_ATTR, {})
        diff = [
            f"{key}: study has {stored.get(key)!r}, this run {identity.get(key)!r}"
            for key in _IDENTITY
            if key in identity
            and (key in stored or key not in _LATER_KEYS)
            and stored.get(key) != identity.get(key)
        ]
        if [d.name.lower() for d in study.directions] != list(directions):
            diff.insert(0, f"directions: study has {[d.name.lower() for d in study.directions]}")
        if diff:
            raise StudyMismatchError(
                f"study {study_name!r} in {safe_url(storage.url)} was made for another search ("
                + "; ".join(diff)
                + "); resume it with the same settings, or start another search with "
                "search.study_name=<new name> in a new hydra.run.dir"
            )
        return study, False
    if not create:
        raise UserError(f"no study {study_name!r} in {safe_url(storage.url)}")
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=list(directions),
            load_if_exists=True,
        )
    except sqlalchemy.exc.IntegrityError:
        # Another process (another machine on the same database) created it at the same
        # moment: open it as it would have been opened a moment later.
        return _open_study(storage, study_name, directions, identity, create=False)
    study.set_user_attr(STUDY_ATTR, dict(identity))
    return study, True
