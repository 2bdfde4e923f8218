"""Writes that never leave half a file or half a directory behind.

A file is written beside its target and renamed over it in one step; a directory is built
beside its target and renamed into place. A crash or kill at any moment leaves the old version
or the new one (and, after a kill, the hidden temporary file or directory, which
:func:`remove_stale_temps` and :func:`remove_stale_staging` clear). Results get the modes any
new file or directory gets under the umask. A write that fails (a parent that is a file, no
permission, a full disk) raises :class:`~supernet.common.errors.OutputError` naming the target.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError, UserError

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "check_not_cwd",
    "check_target_dir",
    "default_mode",
    "free_space",
    "make_dir",
    "move_into_place",
    "remove_stale_staging",
    "remove_stale_temps",
    "staging_dir",
    "write_error",
    "writing",
]


def default_mode(directory: bool = False) -> int:
    """The mode a new file (or directory) gets under the current umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def _reason(path: Path, exc: OSError) -> str:
    """Why writing ``path`` failed, in words (a parent that is a file says so)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"{parent} is a file, not a directory"
            break
    return exc.strerror or str(exc)


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into an :class:`OutputError`."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        path = Path(path)
        if exc.errno == errno.ENOSPC:
            # an atomic write leaves the file it replaces alone until its new version is whole
            kept = " (its previous version is kept as it was)" if path.is_file() else ""
            raise OutputError(
                f"cannot write {path}: no space left on the device ({free_space(path)} free "
                f"there); free some space or write elsewhere{kept}"
            ) from exc
        raise OutputError(
            f"cannot write {path}: {_reason(path, exc)}; choose a location you may write to"
        ) from exc


def free_space(path: Path) -> str:
    """The free space on the disk of ``path`` (or of its nearest existing parent), in words."""
    for parent in (path, *path.parents):
        if parent.exists():
            try:
                free = shutil.disk_usage(parent).free
            except OSError:
                break
            return f"{free / 2**20:.1f} MiB" if free >= 2**20 else f"{free / 2**10:.0f} KiB"
    return "little"


def make_dir(path: str | Path) -> Path:
    """``mkdir -p path``, failing with an :class:`OutputError` that names it."""
    path = Path(path)
    with writing(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


#: What torch's (and safetensors') errors say when a write failed: ``torch.save`` on a full
#: disk raises ``RuntimeError: [enforce fail at inline_container.cc:…] . unexpected pos …`` (or,
#: in other versions, ``PytorchStreamWriter failed writing file …``), not ``OSError``;
#: safetensors raises ``SafetensorError: … I/O error: No space left on device (os error 28)``.
_WRITE_FAILED = (
    "unexpected pos",
    "PytorchStreamWriter",
    "file write failed",
    "inline_container",
    "I/O error",
)


def _write_failed(exc: Exception) -> bool:
    """Whether ``exc`` (from torch or safetensors, not an ``OSError``) says a write failed."""
    text = str(exc)
    return any(marker in text for marker in _WRITE_FAILED)


def write_error(exc: Exception, directory: str | Path) -> OSError:
    """The ``OSError`` a failed write by torch or safetensors stands for: ``ENOSPC`` when the
    message says so or little space is left in ``directory``, else ``EIO``."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = 0
    full = "os error 28" in str(exc) or "No space left" in str(exc) or free < 64 * 2**20
    what = type(exc).__name__
    return OSError(
        errno.ENOSPC if full else errno.EIO,
        f"the write failed ({what}, {free_space(Path(directory))} free there)",
    )


def _release_frames(exc: BaseException) -> None:
    """Drop the tracebacks of ``exc`` and of the exceptions it chains: their frames hold torch's
    writer, and with it the temporary file open, whose space (already unlinked) is freed — and
    the free space reported right — only once they go."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__context__, e.__cause__]


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Call ``write(tmp_path)``, flush it to disk, and rename it to ``path`` in one step."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            try:
                write(tmp)
            except OSError:
                raise
            except Exception as exc:  # torch's RuntimeError, safetensors' SafetensorError
                if not _write_failed(exc):
                    raise
                _release_frames(exc)
                Path(tmp).unlink(missing_ok=True)
                # The reason torch does not give: most often a full disk.
                raise write_error(exc, path.parent) from exc
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, default_mode())  # mkstemp makes it private
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temporary files that writes of ``path`` killed half-way left beside it.

    Only for files one process writes at a time (a run's checkpoint): a concurrent writer's
    temporary file would be deleted too. Returns the files removed.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_not_cwd(path: Path, name: str) -> None:
    """Refuse ``out=.`` (or ``..``, or a path to the current directory): a directory write
    replaces its target whole, by renames beside it."""
    if path.name == "..":
        raise UserError(f"{name} ends in '..'; give the directory by its own name")
    if not path.name or path.resolve() == Path.cwd().resolve():
        raise UserError(
            f"{name} is the current directory, which a write would replace whole; choose a new "
            "directory inside it, e.g. out=export"
        )


def check_target_dir(
    path: Path,
    overwrite: bool,
    name: str,
    hint: str,
    replaces: Collection[str],
    what: str,
    signatures: Collection[Collection[str]] = (),
) -> None:
    """Refuse to replace a file, or a non-empty directory unless ``overwrite`` — and even then
    a directory that is not an earlier output (``what`` names it, "an export"): one holding
    anything but such an output's files (``replaces``), or not all the files of one of
    ``signatures`` (a user's own README.md alone is no export). ``overwrite`` replaces the
    whole directory, and ``out=~`` must not delete a home.

    ``name`` says what the target is in the message (``out=runs/x``); ``hint`` how to overwrite.
    """
    fix = "choose a new or empty directory"
    if path.is_symlink():  # replacing it would replace the link, and strand the old directory
        raise UserError(
            f"{name} is a symbolic link (to {os.readlink(path)}); give the directory itself, "
            f"or {fix}"
        )
    if path.exists() and not path.is_dir():
        raise UserError(f"{name} exists and is not a directory; {fix}")
    if not path.is_dir():
        return
    check_not_cwd(path, name)
    entries = sorted(path.iterdir())
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries if p.name not in replaces]
    names = {p.name for p in entries}
    if entries and not foreign and signatures and not any(set(s) <= names for s in signatures):
        raise UserError(
            f"{name} holds {', '.join(sorted(names))}, not a whole {what.removeprefix('an ')}; "
            f"{hint} replaces only {what}, so {fix}"
        )
    if foreign:
        rest = [f"{len(foreign) - 3} more"] if foreign[4:] else foreign[3:]
        listed = foreign[:3] + rest
        shown = " and ".join([", ".join(listed[:-1]), listed[-1]] if listed[1:] else listed)
        raise UserError(
            f"{name} holds {shown}, not {what}'s files; {hint} replaces only {what} (the whole "
            f"directory), so {fix}"
        )
    if entries and not overwrite:
        raise UserError(f"{name} exists and is not empty; choose another or pass {hint}")


#: The names of what a directory write leaves beside its target while it runs: names a user
#: would not give a directory of their own (".best.old" was one, and a kill's tidy-up took it).
_STAGING = "vitnas-staging-"
_OLD = "vitnas-old"


def _old_dir(target: Path) -> Path:
    return target.with_name(f".{target.name}.{_OLD}")


def remove_stale_staging(target: Path) -> list[Path]:
    """Tidy what a killed directory write of ``target`` left beside it: its hidden staging
    directories are deleted, and a previous ``target`` that a kill caught between the two renames
    of :func:`move_into_place` (so only its ``.old`` copy exists) is put back. Only for targets one
    process writes at a time (an export directory), and before its writer's own staging directory
    exists. Returns the directories deleted."""
    if not target.parent.is_dir():
        return []
    old = _old_dir(target)
    if old.is_dir() and not target.exists():
        old.rename(target)
    stale = [
        p
        for p in sorted(target.parent.glob(f".{glob.escape(target.name)}.{_STAGING}*"))
        # "." + name + "." + prefix + mkdtemp's 8 random characters
        if p.is_dir() and len(p.name) == len(target.name) + 10 + len(_STAGING)
    ]
    if old.is_dir():
        stale.append(old)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def staging_dir(target: Path) -> Path:
    """An empty directory beside ``target`` (same filesystem, so it can be renamed into place)."""
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{target.name}.{_STAGING}", dir=target.parent))
        os.chmod(staged, default_mode(directory=True))  # mkdtemp makes it private
    return staged


def move_into_place(staged: Path, target: Path) -> None:
    """Rename ``staged`` to ``target``, replacing an existing ``target`` directory."""
    if target.exists():
        old = _old_dir(target)
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(target)
