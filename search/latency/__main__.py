"""``python -m search.latency calibrate|measure [key=value ...]``: the latency command line.

The first word picks the command; the rest are Hydra overrides of ``conf/latency.yaml``::

    python -m search.latency calibrate space=fashion_mnist device=cpu batch_size=1 threads=2
    python -m search.latency calibrate supernet=runs/demo/supernet.pt batch_size=32
    python -m search.latency measure space=autoformer_tiny subnet=smallest batch_size=1

A user error (bad value, missing file, no CUDA ...) prints one line and exits with status 2;
``debug=true`` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from supernet import Space, Subnet, family_of
from supernet.checkpoint import checkpoint_space, load_checkpoint
from supernet.common.atomic import atomic_write_text, make_dir
from supernet.common.cli import hydra_main, user_errors
from supernet.common.console import progress_mode, say
from supernet.common.errors import UserError
from supernet.common.rundir import claim_run_dir
from supernet.saved_model import CONFIG_FILE, read_subnet_yaml
from supernet.space import read_yaml
from supernet.train.rng import seed_problem

from . import config as _config  # noqa: F401  (registers latency_schema)
from .calibrate import calibrate
from .errors import LatencyError, ProfileError
from .measure import check_settings, count_problem, measure_latency
from .profile import find_profile
from .report import REPORT_FILES, write_latency_report

COMMANDS = ("calibrate", "measure")
#: What each command writes into its output directory.
MEASUREMENT_FILE = "latency_measurement.yaml"
WRITES = {"calibrate": tuple(REPORT_FILES.values()), "measure": (MEASUREMENT_FILE,)}

log = logging.getLogger("search.latency")


def _space(cfg: DictConfig) -> Space:
    if cfg.supernet:
        payload = load_checkpoint(cfg.supernet)
        space = checkpoint_space(payload, cfg.supernet)
        chosen = HydraConfig.get().runtime.choices.get("space")
        if _space_chosen() and chosen is not None:
            raise LatencyError(
                f"space={chosen} and supernet={cfg.supernet} both name the space to measure "
                f"(the checkpoint's is {space.name or space.family}); pass only one of them"
            )
        changed = _space_overrides()
        if changed:
            raise LatencyError(
                f"{changed[0]} changes the space= preset, but supernet={cfg.supernet} measures "
                f"the checkpoint's own space ({space.name or space.family}); drop "
                f"{', '.join(changed)}, or measure space=<preset> with them instead of supernet="
            )
        return space
    return Space.from_dict(OmegaConf.to_container(cfg.space, resolve=True))  # type: ignore[arg-type]


def _space_chosen() -> bool:
    """Whether the command line chose a space (``space=...``), not the config's default."""
    return any(o.split("=", 1)[0].lstrip("+~") == "space" for o in HydraConfig.get().overrides.task)


def _space_overrides() -> list[str]:
    """The command line's changes to the space preset (``space.img_size=64`` ...)."""
    return [o for o in HydraConfig.get().overrides.task if o.lstrip("+~").startswith("space.")]


def _space_given() -> bool:
    """Whether the command line said which space to measure in: ``space=`` or ``space.*``."""
    return _space_chosen() or bool(_space_overrides())


NAMED = ("smallest", "middle", "largest")


def _subnet(cfg: DictConfig, space: Space) -> tuple[Space, Subnet]:
    """The space and subnet to measure: a named subnet of ``space``, or a saved one.

    An export directory, or a ``subnet.yaml`` with its ``space:``, brings its own space; with
    ``space=`` or ``supernet=`` as well, the two must be the same space.
    """
    choice = str(cfg.subnet)
    if choice in NAMED:
        return space, getattr(space, choice)()
    path = Path(choice).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise LatencyError(
                f"subnet={choice}: {path} holds no {CONFIG_FILE}; give an export directory, a "
                f"subnet.yaml or one of {', '.join(NAMED)}"
            )
        path = path / CONFIG_FILE
    elif path.exists() and not path.is_file():
        raise LatencyError(
            f"subnet={choice}: {path} is not a regular file; give an export directory, a "
            f"subnet.yaml or one of {', '.join(NAMED)}"
        )
    elif not path.is_file():
        raise LatencyError(
            f"no file {path}: subnet must be {', '.join(NAMED)}, an export directory or the path "
            "of a subnet.yaml"
        )
    data = read_yaml(path, "subnet")
    if not isinstance(data, dict):
        raise LatencyError(
            f"{path} {'is empty' if data is None else 'holds no mapping of fields'}; give an "
            f"export directory, its subnet.yaml, a YAML of a subnet's fields or one of "
            f"{', '.join(NAMED)}"
        )
    if "subnet" in data and "embed_dim" not in data:
        if data.get("space") is not None:  # an export's subnet.yaml: it names its space
            own, subnet, _ = read_subnet_yaml(path)
            if _space_given() or cfg.supernet:
                diff = own.differences(space)
                if diff:
                    raise LatencyError(
                        f"subnet={choice} is a subnet of another search space than the one "
                        f"given (they differ in {', '.join(diff)}); leave out space=, space.* and "
                        "supernet= to measure it in its own"
                    )
            return own, subnet
        data = data["subnet"]
    return space, space.subnet_from_dict(data)


def _out_dir(cfg: DictConfig) -> Path:
    return Path(cfg.out) if cfg.out else Path(HydraConfig.get().runtime.output_dir)


def _check_options(cfg: DictConfig) -> None:
    """Every option's value, before anything is built or timed (an option the command does not
    use is checked too: a typo there is still one)."""
    check_settings(
        batch_size=cfg.batch_size, warmup=cfg.warmup, repeats=cfg.repeats, rounds=cfg.rounds
    )
    # The designed sample needs two subnets (a fit).
    for name, low, default in (("n_samples", 2, 32), ("n_holdout", 1, 16)):
        if problem := count_problem(name, cfg[name], low=low, default=default):
            raise LatencyError(problem)
    if problem := seed_problem("seed", cfg.seed):  # the range of every command's seed
        raise LatencyError(problem)
    try:
        progress_mode(cfg.progress)
    except UserError as exc:
        raise LatencyError(str(exc)) from None


def _prepare_out(cfg: DictConfig) -> Path:
    """The output directory, made and checked before the timing: writable, and not holding an
    earlier run's results (unless ``overwrite=true``)."""
    out = _out_dir(cfg)
    # (the run directory itself is claimed before Hydra writes there: KeepRunFiles)
    if out.resolve() != Path(HydraConfig.get().runtime.output_dir).resolve():
        claim_run_dir(out, cfg.command, option="out")
    earlier = [name for name in WRITES[cfg.command] if (out / name).exists()]
    if earlier and not cfg.overwrite:
        raise LatencyError(
            f"{out} holds an earlier {cfg.command}'s results ({', '.join(earlier)}); give another "
            f"{'out=' if cfg.out else 'hydra.run.dir= (or out=)'}, or pass overwrite=true to "
            "replace them"
        )
    make_dir(out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise LatencyError(f"cannot write to {out} (permission denied); give another out=")
    return out


def _calibrate(cfg: DictConfig, space: Space) -> None:
    out = _prepare_out(cfg)
    result = calibrate(
        space,
        device=cfg.device,
        batch_size=cfg.batch_size,
        threads=cfg.threads,
        n_samples=cfg.n_samples,
        n_holdout=cfg.n_holdout,
        warmup=cfg.warmup,
        repeats=cfg.repeats,
        rounds=cfg.rounds,
        seed=cfg.seed,
        clock=cfg.clock,
        steady_allocator=cfg.steady_allocator,
        progress=cfg.progress,
    )
    paths, notices = write_latency_report(result, out)
    say(log, result.summary())
    for kind, path in paths.items():
        say(log, f"  {kind}: {path}")
    if cfg.profile_dir:
        filed = result.profile.save(Path(cfg.profile_dir) / result.profile.default_filename())
        say(log, f"  profile filed for searches: {filed}")
    for notice in notices:
        say(log, notice)


def _measure(cfg: DictConfig, space: Space) -> None:
    space, subnet = _subnet(cfg, space)
    out = _prepare_out(cfg)
    model = family_of(space).build_model(space, subnet)
    result = measure_latency(
        model,
        space=space,
        batch_size=cfg.batch_size,
        device=cfg.device,
        threads=cfg.threads,
        warmup=cfg.warmup,
        repeats=cfg.repeats,
        clock=cfg.clock,
        steady_allocator=cfg.steady_allocator,
    )
    record: dict[str, Any] = {"subnet": subnet.to_dict(), "space": space.to_dict()}
    record["measurement"] = result.to_dict()
    say(log, f"{subnet}: {result}")
    if cfg.profile_dir and Path(cfg.profile_dir).exists():
        try:
            profile = find_profile(
                cfg.profile_dir,
                space,
                device=cfg.device,
                batch_size=cfg.batch_size,
                threads=result.threads,
            )
        except ProfileError:
            pass  # measuring needs no profile
        else:
            predicted = profile.predict_ms(space, subnet)
            record["predicted_ms"] = predicted
            say(log, f"  predicted by the profile in {cfg.profile_dir}: {predicted:.3f} ms")
    path = out / MEASUREMENT_FILE
    text = yaml.safe_dump(record, sort_keys=False)
    atomic_write_text(path, text)
    say(log, f"  written: {path}")


@hydra.main(version_base="1.3", config_path="../../supernet/conf", config_name="latency")
@user_errors
def main(cfg: DictConfig) -> None:
    if cfg.command not in COMMANDS:
        raise LatencyError(f"unknown command {cfg.command!r}: use {' or '.join(COMMANDS)}")
    _check_options(cfg)
    space = _space(cfg)
    (_calibrate if cfg.command == "calibrate" else _measure)(cfg, space)


def _argv_with_command(argv: list[str]) -> list[str]:
    """Turn the leading ``calibrate``/``measure`` word into the Hydra override ``command=...``."""
    rest = argv[1:]
    if rest and rest[0] in COMMANDS:
        also = [a for a in rest[1:] if a.lstrip("+~").startswith("command=")]
        if also:
            print(
                f"error: {rest[0]} and {also[0]} both name the command; give one of them "
                f"(python -m search.latency {rest[0]} [key=value ...])",
                file=sys.stderr,
            )
            raise SystemExit(2)
        return [argv[0], f"command={rest[0]}", *rest[1:]]
    if any(a.startswith("command=") or a.startswith("-") for a in rest):
        return argv  # command=... given, or a Hydra flag such as --help or --cfg
    word = f" {rest[0]!r}" if rest and "=" not in rest[0] else ""
    print(
        f"error: unknown or missing command{word}; use python -m search.latency "
        "calibrate|measure [key=value ...] (--help lists the options)",
        file=sys.stderr,
    )
    raise SystemExit(2)


def cli() -> None:
    """The console script (``vitnas-latency``): the same as ``python -m search.latency``."""
    sys.argv = _argv_with_command(sys.argv)
    hydra_main(main)


if __name__ == "__main__":
    cli()
