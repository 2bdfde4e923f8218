"""Reading a user's YAML file safely: text only, a bounded size, and no alias bombs.

``yaml.safe_load`` never runs code, but a few hundred bytes of nested aliases (``&a [*b, *b, …]``)
expand to billions of nodes once anything walks or prints the result, and binary bytes or a
deeply nested document raise errors that are not ``yaml.YAMLError``. :func:`read_yaml` turns every
one of these into a :class:`YamlError` naming the file, and counts what the aliases expand to
before building anything (on the composed node graph, each shared node counted once per use
without being copied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

__all__ = ["MAX_BYTES", "MAX_NODES", "YamlError", "load_yaml", "read_yaml"]

#: The largest YAML file read (a subnet, a space, a manifest: a few kilobytes).
MAX_BYTES = 16 * 2**20
#: The most nodes a document may hold once its aliases are expanded.
MAX_NODES = 1_000_000


class YamlError(UserError):
    """A YAML file that cannot be read: not text, not YAML, too large, or an alias bomb."""


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with every alias expanded, counted without expanding it (each
    distinct node is visited once; its size is reused wherever an alias points to it)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = list(node.value)
        if children_done:
            total = 1 + sum(sizes.get(id(c), 0) for c in children)
            sizes[id(node)] = min(total, MAX_NODES + 1)  # enough to refuse; keeps ints small
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes[id(root)]


def load_yaml(text: str, source: str = "<string>") -> Any:
    """``yaml.safe_load(text)``, refusing alias bombs and deep nesting with a :class:`YamlError`
    (``yaml.YAMLError`` for text that is not YAML, as ``yaml.safe_load`` raises)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise YamlError(f"{source} is nested too deeply to be a config file") from None
    if node is None:
        return None
    if _expanded_size(node) > MAX_NODES:
        raise YamlError(
            f"{source} expands to more than {MAX_NODES:,} YAML nodes through its aliases (&/*): "
            "refusing to read it; give a plain file without repeated aliases"
        )
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except RecursionError:
        raise YamlError(f"{source} is nested too deeply to be a config file") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    """The YAML document in ``path``; a :class:`YamlError` names the file and what is wrong
    (missing, a directory, too large, not UTF-8 text, not YAML, an alias bomb)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YamlError(
                f"{path} is {size / 2**20:.0f} MiB, too large for a {what} (at most "
                f"{MAX_BYTES // 2**20} MiB); give the right file"
            )
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise YamlError(
            f"{path} is not a {what}: it holds binary data, not YAML text; give the right file "
            "(or restore it from a copy)"
        ) from None
    except IsADirectoryError:
        raise YamlError(f"{path} is a directory, not a {what}") from None
    except OSError as exc:
        raise YamlError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return load_yaml(text, str(path))
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise YamlError(
            f"{path} is not valid YAML, so not a {what} ({detail}); fix it or restore it from a "
            "copy"
        ) from None
