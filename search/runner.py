"""A whole search run: checkpoint → budget check → study → workers → tables, plots, summary.

``python -m search`` is a thin Hydra wrapper around :func:`run_search`; tests and notebooks call
it with a composed config and a run directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from omegaconf import DictConfig, OmegaConf

from supernet import Space
from supernet.checkpoint import file_sha256, load_supernet
from supernet.common.atomic import atomic_write_text, make_dir
from supernet.common.config import differences
from supernet.common.console import Progress, plural, say
from supernet.common.errors import CheckpointError, UserError
from supernet.common.rundir import claim_run_dir
from supernet.common.yamlio import YamlError, read_yaml

from .budget import Budget
from .continuation import completed_by, continue_or_start, running_in
from .costs import CostModel
from .objective import load_val_data, subnet_params
from .plots import history_figure, pareto_figure, save_figure
from .results import summary_text, trials_frame, write_table
from .samplers import build_sampler
from .settings import SearchSettings
from .stale import fail_dead_workers, fail_silent_trials
from .storage import default_storage_url, open_storage, open_study, safe_url, storage_error
from .workers import (
    check_worker_memory,
    configure_logging,
    count_finished,
    resolve_device,
    run_workers,
)

__all__ = [
    "MANIFEST",
    "SearchError",
    "SearchResult",
    "job_overrides",
    "read_manifest",
    "run_search",
]

log = logging.getLogger(__name__)

#: What a run directory records about its search (read by export and report).
MANIFEST = "study.yaml"


class SearchError(UserError):
    """A search that could not run to the end (a worker died, ...); its trials are kept."""


@dataclass
class SearchResult:
    run_dir: Path
    study_name: str
    storage_url: str
    trials: pd.DataFrame
    files: list[Path] = field(default_factory=list)

    @property
    def best(self) -> pd.Series | None:
        """The most accurate feasible trial (ties: the cheaper, then the earlier)."""
        ok = self.trials[self.trials["feasible"].fillna(False) & self.trials["val_acc"].notna()]
        if ok.empty:
            return None
        return ok.sort_values(["val_acc", "flops", "number"], ascending=[False, True, True]).iloc[0]


def _si(value: float) -> str:
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def default_study_name(settings: SearchSettings, space: Space, budget: Budget) -> str:
    """Readable and tied to the settings, so re-running the same command resumes its study."""
    bounds = [
        "".join(
            [
                f"{_si(b.low)}<=" if b.low is not None else "",
                b.metric,
                f"<={_si(b.high)}" if b.high is not None else "",
            ]
        )
        for b in budget.bounds
    ] or ["nobudget"]
    return "/".join(
        [
            space.name or "space",
            ",".join(settings.objectives),
            ",".join(bounds),
            settings.sampler_name,
            f"seed{settings.seed}",
        ]
    )


def _study_counts(study: Any) -> str:
    """What a study holds, for its opening line: finished trials, then queued and running ones
    (the seeded smallest and largest subnets wait in a new study)."""
    states = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    done = states["COMPLETE"] + states["PRUNED"] + states["FAIL"]
    parts = [f"{plural(done, 'trial')} done"]
    for state, word in (("WAITING", "queued"), ("RUNNING", "running")):
        if states[state]:
            parts.append(f"{states[state]} {word}")
    return ", ".join(parts)


def _checkpoint_data(payload: Mapping[str, Any], path: Path) -> dict[str, Any]:
    data = payload.get("data")
    if not isinstance(data, Mapping):
        raise CheckpointError(
            f"{path} records no data config, so the search cannot rebuild the validation split "
            "the supernet was trained beside; use a checkpoint written by `python -m "
            "supernet.train`"
        )
    return dict(data)


def _write_manifest(run_dir: Path, content: Mapping[str, Any]) -> Path:
    path = run_dir / MANIFEST
    text = yaml.safe_dump(dict(content), sort_keys=False)
    atomic_write_text(path, text)
    return path


#: What the commands that read a run (export, report) need from its manifest.
_MANIFEST_KEYS = ("study_name", "checkpoint", "checkpoint_sha256")


def read_manifest(run_dir: str | Path, required: Sequence[str] = _MANIFEST_KEYS) -> dict[str, Any]:
    """A search run's manifest, checked to be a mapping holding ``required`` (by default the
    study and the checkpoint, its path and sha256); a damaged one is one error line naming
    the file."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise UserError(
            f"{run_dir} is not a search run directory (no {MANIFEST}); give the run dir of a "
            "`python -m search`"
        )
    fix = "restore it from a copy, or run the search again in that directory to rewrite it"
    try:
        data = read_yaml(path, "search manifest")
    except YamlError as exc:
        raise UserError(f"{exc}; {fix}") from None
    if not isinstance(data, Mapping):
        raise UserError(
            f"{path} is not a search manifest (a {type(data).__name__}, not a mapping); {fix}"
        )
    missing = [key for key in required if not isinstance(data.get(key), str)]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)} (or holds no text there); {fix}")
    return dict(data)


#: Random subnets drawn to see that a budget's bounds do not clash (half a second for a ViT).
FEASIBILITY_DRAWS = 5000


def _previous_manifest(path: Path) -> Mapping[str, Any] | None:
    """The manifest a rerun finds (None if it is missing or unreadable: a new run starts)."""
    if not path.is_file():
        return None
    try:
        data = read_yaml(path, "search manifest")
    except YamlError:
        return None
    return data if isinstance(data, Mapping) else None


def _check_same_search(
    previous: Mapping[str, Any] | None, run_dir: Path, study_name: str, now: Mapping[str, Any]
) -> None:
    """A run directory holds one search: a command whose settings name another study (another
    budget, objective, sampler, seed, checkpoint or storage) is refused before anything is
    written, or its tables and manifest would replace those of the search already there."""
    if previous is None or previous.get("study_name") in (None, study_name):
        return
    changed = [
        f"{key} {before!r} -> {after!r}"
        for name, value in now.items()
        if name in previous
        for key, before, after in differences(name, previous.get(name), value)
    ]
    raise UserError(
        f"{run_dir} holds the search of study {previous.get('study_name')!r}, and this "
        f"command's settings make another study, {study_name!r}"
        + (f" ({', '.join(changed)})" if changed else "")
        + "; give it its own hydra.run.dir, or repeat the first search's settings to continue it"
    )


@contextlib.contextmanager
def _run_dir_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory while a search runs in it: two searches in
    one directory would overwrite each other's manifest and tables."""
    try:
        fd = os.open(run_dir, os.O_RDONLY)
    except OSError:
        yield  # (the directory was checked writable; a lock is a courtesy where it can be had)
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                yield  # a filesystem without locks
                return
            raise UserError(
                f"another search is running in {run_dir}; wait for it to end, or give this one "
                "another hydra.run.dir"
            ) from None
        yield
    finally:
        os.close(fd)


def run_search(
    cfg: DictConfig | Mapping[str, Any] | SearchSettings,
    run_dir: str | Path,
    overrides: Mapping[str, Any] | None = None,
    plotlyjs_dir: str | Path | None = None,
) -> SearchResult:
    """Run (or resume) the search ``cfg`` describes, writing its outputs to ``run_dir``.

    ``overrides`` (the command line's ``key=value`` pairs) become columns of the trials table.
    The plots load plotly.js from ``<plotlyjs_dir>/plotly.min.js`` (default: ``run_dir``; a
    sweep's jobs share one copy at the sweep's root).
    """
    settings = cfg if isinstance(cfg, SearchSettings) else SearchSettings.from_config(cfg)
    run_dir = Path(run_dir)
    make_dir(run_dir)
    with _run_dir_lock(run_dir):
        return _run_search(settings, run_dir, overrides, plotlyjs_dir)


def _run_search(
    settings: SearchSettings,
    run_dir: Path,
    overrides: Mapping[str, Any] | None,
    plotlyjs_dir: str | Path | None = None,
) -> SearchResult:
    manifest_path = run_dir / MANIFEST
    configure_logging(settings.verbose)
    claim_run_dir(run_dir, "search")

    # 1. The supernet, its space, the validation data, the budget: everything that can fail.
    device = resolve_device(settings.device)
    net, payload = load_supernet(settings.supernet, map_location=device)
    data_config = _checkpoint_data(payload, settings.supernet)
    space = net.space
    profile = settings.latency(space)
    costs = CostModel(space, profile.predict_ms if profile is not None else None)
    budget = settings.budget
    budget.check(space, costs)
    if budget.clashes() and budget.find_feasible(space, costs, FEASIBILITY_DRAWS) is None:
        say(
            log,
            f"warning: no subnet of {FEASIBILITY_DRAWS:,} drawn at random (nor the smallest or "
            f"the largest) meets {budget.describe()} at once; the search may find none: loosen "
            "a bound (each alone is within the space's range)",
            stderr=True,
        )
    build_sampler(  # its options are checked here, before anything is written
        settings.sampler,
        settings.sampler_options,
        space=space,
        is_feasible=lambda subnet: True,
        n_objectives=len(settings.objectives),
        seed=settings.seed,
        n_workers=settings.n_workers,
        n_trials=settings.n_trials,
    )
    data = load_val_data(data_config, space, settings.val_size)
    check_worker_memory(settings.n_workers)
    checkpoint = settings.supernet
    if checkpoint.is_dir():
        checkpoint = checkpoint / "supernet.pt"
    sha = file_sha256(checkpoint)

    # 2. The study, created once before any worker starts.
    storage_url = settings.storage or default_storage_url(run_dir)
    storage = open_storage(
        storage_url,
        heartbeat_interval=settings.heartbeat_interval,
        grace_period=settings.grace_period,
        max_retry=settings.max_retry,
    )
    study_name = settings.study_name or default_study_name(settings, space, budget)
    previous = _previous_manifest(manifest_path)
    _check_same_search(
        previous,
        run_dir,
        study_name,
        {
            "checkpoint_sha256": sha,
            "budget": budget.to_config(),
            "objectives": list(settings.objectives),
            "sampler": settings.sampler_name,
            "seed": settings.seed,
            "storage": safe_url(storage_url),
        },
    )
    identity = {
        "checkpoint_sha256": sha,
        "objectives": list(settings.objectives),
        "budget": budget.to_config(),
        "val_size": len(data),
        "data": data_config,
        # the device a latency budget or objective is for (predictions of another mean another
        # search; a recalibration for the same device does not)
        "latency_target": (
            profile.target()
            if profile is not None
            and (budget.bound("latency_ms") is not None or "latency_ms" in settings.objectives)
            else None
        ),
    }
    study, created = open_study(
        storage, study_name, settings.directions, identity, metric_names=settings.objectives
    )
    with _storage_errors(storage_url):
        if created and settings.seed_trials:
            seeds = (space.smallest(), space.largest())
            # no more than a run of trials asks for (n_trials=1 left the largest WAITING);
            # n_trials=0 only creates the study, with both seeds queued for the runs to come
            for subnet in seeds[: settings.n_trials] if settings.n_trials else seeds:
                study.enqueue_trial(subnet_params(subnet), user_attrs={"seeded": True})
        fail_dead_workers(study)  # left RUNNING by processes of this machine that are gone
        if settings.heartbeat_interval and settings.grace_period:
            fail_silent_trials(study, settings.grace_period)  # a worker killed at its start
        run, done = continue_or_start(previous, study, settings.n_trials)
        running = running_in(study, run.id) if run.continued else 0
    manifest = {
        "study_name": study_name,
        "storage": safe_url(storage_url),
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": sha,
        "space": space.to_dict(),
        "data": data_config,
        "val_images": len(data),
        "objectives": list(settings.objectives),
        "directions": settings.directions,
        "cost_axis": settings.cost_axis,
        "budget": budget.to_config(),
        "latency": profile.record() if profile is not None else None,
        "sampler": settings.sampler_name,
        "seed": settings.seed,
        "overrides": dict(overrides or {}),
        "run": run.to_dict(),
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    files = [_write_manifest(run_dir, manifest)]
    to_run = max(settings.n_trials - done - running, 0)
    say(
        log,
        f"study {study_name!r} ({'new' if created else 'resumed'}, {_study_counts(study)}) in "
        f"{safe_url(storage_url)}",
        stderr=True,
    )
    say(
        log,
        f"space {space.name or '(unnamed)'}, budget: {budget.describe()}, objectives: "
        f"{', '.join(settings.objectives)}, sampler: {settings.sampler_name}, "
        f"{len(data)} validation images, {settings.n_workers} worker(s)",
        stderr=True,
    )
    if profile is not None:
        say(
            log,
            f"latency_ms predicted for {profile.describe_target()}"
            + (f" (profile {profile.path})" if profile.path is not None else ""),
            stderr=True,
        )
    if run.continued:
        say(
            log,
            f"continuing this directory's unfinished run {run.id}: {done} of its "
            f"{run.n_trials} trials were done, {to_run} to go"
            + (f" ({running} still running in another process)" if running else ""),
            stderr=True,
        )

    # 3. The trials.
    bar = Progress(
        settings.progress,
        total=to_run,
        desc="search",
        unit="trial",
        logger=log,
        enabled=to_run > 0,
    )

    def progress(done: int) -> None:
        bar.update_to(done)

    failures: list[str] = []
    started = time.perf_counter()
    before = count_finished(study)
    interrupted: KeyboardInterrupt | None = None
    try:
        if to_run > 0:
            with _storage_errors(storage_url):
                failures = run_workers(
                    settings.replace(n_trials=to_run),
                    storage_url,
                    study,
                    data,
                    net,
                    progress,
                    run_id=run.id,
                    attempt=run.continued,
                    run_total=run.n_trials,
                )
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        bar.close()
    elapsed = time.perf_counter() - started

    # 4. Tables, plots, summary: written even after an interruption, so nothing is lost.
    frame = trials_frame(study, space, budget, settings.cost_axis, overrides)
    try:
        files += write_table(frame, run_dir / "trials")
        files += save_figure(
            pareto_figure(frame, settings.cost_axis, budget, title=f"{study_name}"),
            run_dir / "pareto.html",
            png=settings.plots_png,
            plotlyjs_dir=plotlyjs_dir,
        )
        files += save_figure(
            history_figure(frame, title=f"{study_name}: history"),
            run_dir / "history.html",
            png=settings.plots_png,
            plotlyjs_dir=plotlyjs_dir,
        )
    except OSError:
        if failures:  # what stopped the workers (a full disk, say) comes first
            raise SearchError(
                "; ".join(failures) + "; the tables could not be written either"
            ) from None
        raise
    say(
        log,
        summary_text(
            frame,
            cost_axis=settings.cost_axis,
            multi_objective=settings.multi_objective,
            budget=budget,
            elapsed_s=elapsed,
            new_trials=count_finished(study) - before,
        ),
    )
    say(
        log, f"tables and plots in {run_dir}  (dashboard: optuna-dashboard {safe_url(storage_url)})"
    )
    # Finished: every trial asked for is done and none of the run's is still running (a timeout
    # also finishes a run).
    complete = completed_by(study, run.id) >= run.n_trials and not running_in(study, run.id)
    timed_out = settings.timeout is not None and elapsed >= settings.timeout
    if not interrupted and not failures and (complete or timed_out):
        manifest["run"] = dataclasses.replace(run, finished=True).to_dict()
        _write_manifest(run_dir, manifest)
    if interrupted is not None:
        raise interrupted
    if failures:
        raise SearchError(
            "; ".join(failures) + ". The tables hold every finished trial; run the same command "
            "again to finish this run (a trial left running is retried with the same subnet "
            f"{settings.grace_period} s after its last heartbeat)"
        )
    return SearchResult(run_dir, study_name, storage_url, frame, files)


@contextlib.contextmanager
def _storage_errors(url: str) -> Iterator[None]:
    """A failing storage (a full disk, a damaged database) as one error line naming it."""
    try:
        yield
    except (KeyboardInterrupt, UserError):
        raise
    except Exception as exc:
        failure = storage_error(exc, url)
        if failure is None:
            raise
        raise failure from None


def job_overrides(overrides: list[str], cfg: DictConfig) -> dict[str, Any]:
    """``key=value`` command-line overrides → ``{key: value}``, values as the config holds them
    (a group choice such as ``search=autoformer_evolution`` as typed; ``hydra.*`` left out)."""
    out: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.lstrip("+~")
        if not sep or key.startswith(("hydra.", "hydra/")):
            continue
        value: Any = raw
        selected = OmegaConf.select(cfg, key, default=raw, throw_on_missing=False)
        if selected is None or isinstance(selected, (bool, int, float, str)):
            value = selected
        if key == "search.storage" and isinstance(value, str):
            value = safe_url(value)  # the tables must not spread a database password
        out[key] = value
    return out
