"""Structured configs: every entry point's options are a dataclass, registered in Hydra's
ConfigStore, with each default and its one-line help defined once (a field's ``metadata``).

- :func:`option` declares a field with its help text;
- :func:`register` stores an app's schema (the primary config YAML lists it first in its defaults,
  so that Hydra checks every value and every key against it while composing);
- :func:`load` turns a composed config, or a plain mapping (the Python API), into an instance of
  the schema, with a wrong key or a value of the wrong type as one :class:`UserError` line;
- :func:`options_help` lists the options, their defaults and help for ``--help``.

The range checks (``n_trials`` ≥ 0 ...) stay with the code that reads the settings, as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import UserError, quoted

__all__ = ["config_message", "differences", "load", "option", "options_help", "register"]

T = TypeVar("T")


def option(default: Any = dataclasses.MISSING, help: str = "", **kwargs: Any) -> Any:
    """A dataclass field with its help text (shown by ``--help``). Mutable defaults (lists,
    dataclasses) are given as ``default`` and copied per instance."""
    metadata = {"help": help}
    if isinstance(default, list | dict) or dataclasses.is_dataclass(default):
        value = default
        return dataclasses.field(default_factory=lambda: _copy(value), metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


_SCHEMAS: dict[str, type] = {}


def register(name: str, node: type, group: str | None = None) -> None:
    """Store ``node`` (a dataclass) in Hydra's ConfigStore as ``name`` (in ``group``); its options
    are what ``${vitnas.options:<name>}`` gives in a help template."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=name, node=node, group=group)
    _SCHEMAS[name] = node


def config_message(exc: OmegaConfBaseException) -> str:
    """An OmegaConf error about a user's value or key, as one line with its fix."""
    key = getattr(exc, "full_key", None) or ""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "not in" in text and text.startswith("Key "):
        return f"unknown option {key or text}; check its spelling (`--help` lists the options)"
    if key and "Cannot merge DictConfig with" in text:  # band=[1M,2M], train=fast
        return (
            f"{key} is a group of options, not a value; set one of them as {key}.<option>=<value> "
            f"(`--help` lists the options)"
        )
    value = getattr(exc, "value", None)
    shown = f", got {quoted(value)}" if value is not None else ""
    return (
        f"{key + ': ' if key else ''}{text}{shown if shown and repr(value) not in text else ''}; "
        f"give {key or 'it'} a value of the right type (`--help` lists the options)"
    )


def load(schema: type[T], cfg: DictConfig | Mapping[str, Any], drop: tuple[str, ...] = ()) -> T:
    """``cfg`` (a composed Hydra config or a plain mapping) as an instance of ``schema``, keys
    in ``drop`` (``hydra``) left out. Unknown keys and values of the wrong type are one
    :class:`UserError` line."""
    try:
        data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
        if not isinstance(data, Mapping):
            raise UserError(f"expected a mapping of options, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k not in drop}
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise UserError(config_message(exc)) from None


def _fields(schema: type, prefix: str) -> Iterator[tuple[str, Any, str]]:
    for f in dataclasses.fields(schema):
        if f.name.startswith("_"):
            continue
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        if dataclasses.is_dataclass(default):
            yield from _fields(type(default), f"{prefix}{f.name}.")
            continue
        yield f"{prefix}{f.name}", default, f.metadata.get("help", "")


def _shown(value: Any) -> str:
    """A default as a user types it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    return str(value)


def options_help(schema: type, prefix: str = "", composed: Any = None) -> str:
    """Every option of ``schema`` as ``key=default  help``, one per line, nested ones dotted.

    ``composed``: the app's composed config (its presets applied), whose values are the
    defaults shown; a config group (``space``) shows the preset chosen."""
    rows = []
    for key, default, text in _fields(schema, prefix):
        shown = _shown(_composed_default(composed, key, default))
        rows.append((f"{key}={shown}", text))
    width = min(max((len(k) for k, _ in rows), default=0), 38)
    return "\n".join(
        f"  {k:<{width}}  {t}" if len(k) <= width else f"  {k}\n  {'':<{width}}  {t}"
        for k, t in rows
    )


def _composed_default(composed: Any, key: str, default: Any) -> Any:
    if composed is None:
        return default
    try:
        choices = OmegaConf.select(composed, "hydra.runtime.choices")
        if choices is not None and key in choices and choices[key] is not None:
            return choices[key]  # a config group: the preset it picked
        value = OmegaConf.select(composed, key, default=default, throw_on_missing=False)
        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
        return value
    except OmegaConfBaseException:
        return default


def _options_resolver(name: str, _root_: Any = None) -> str:
    return options_help(_SCHEMAS[name], composed=_root_).replace("$", "$$")


# `--help` templates list an app's options with ${vitnas.options:<schema name>}; Hydra fills the
# template with string.Template, so a literal $ is written $$. The defaults shown are the
# composed config's (``_root_``): what a run without overrides gets.
OmegaConf.register_new_resolver("vitnas.options", _options_resolver, replace=True)


def differences(key: str, before: Any, after: Any) -> list[tuple[str, Any, Any]]:
    """The (dotted key, before, after) that differ: a mapping's changed entries alone (a budget
    names the one bound that changed, not all eight)."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return [
            item
            for sub in dict.fromkeys([*before, *after])
            for item in differences(f"{key}.{sub}", before.get(sub), after.get(sub))
        ]
    return [] if before == after else [(key, before, after)]
