"""YAML files read with line numbers, so every complaint about a value names ``file:line: key.path``.

Values are read with the trainer's YAML rules (``trainer.yamlio.SafeLoader``: safe, and
``1e-4`` is a float as in the trainer's config files), and the line of every mapping key and
list item is kept, addressed by its key path (``("params", "learning_rate", "high")``).
The checking helpers (``mapping``, ``number``) raise the caller's error type at that line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from trainer.errors import UserError
from trainer.yamlio import SafeLoader

__all__ = ["Located", "load_yaml", "is_number", "mapping", "number"]

KeyPath = tuple[Any, ...]


class Located:
    """Line numbers of every key and list item of a YAML document, addressed by key path."""

    def __init__(self, path: Path, lines: dict[KeyPath, int], error_type: type[UserError] = UserError) -> None:
        self.path = path
        self.lines = lines
        self.error_type = error_type

    def line(self, keys: KeyPath) -> int | None:
        """Return the line of ``keys`` or of its nearest located parent."""
        while keys:
            if keys in self.lines:
                return self.lines[keys]
            keys = keys[:-1]
        return None

    def error(self, keys: KeyPath, problem: str) -> UserError:
        """Return an error (of ``error_type``) reading ``file:line: a.b.c: problem``."""
        line = self.line(keys)
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        dotted = ".".join(str(k) for k in keys)
        return self.error_type(f"{where}: {dotted}: {problem}" if dotted else f"{where}: {problem}")


def load_yaml(path: Path, what: str = "YAML file", error_type: type[UserError] = UserError) -> tuple[Any, Located, str]:
    """Return (data, line index, text) of the YAML file ``path``.

    ``what`` names the file in a "not found" message; an unreadable file, invalid YAML or a
    duplicate key raise ``error_type`` naming the file (and the line when there is one).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error_type(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise error_type(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    try:
        loader = SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise error_type(f"{where}: invalid YAML ({getattr(err, 'problem', None) or err})") from None
    located = Located(path, {}, error_type)
    if node is not None:
        _index(node, (), located)
    return data, located, text


def _index(node: yaml.Node, keys: KeyPath, located: Located) -> None:
    """Record the line of every mapping key and sequence item under ``node``; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = keys + (key,)
            if key in seen:
                located.lines[child] = key_node.start_mark.line + 1
                raise located.error(child, "duplicate key")
            seen.add(key)
            located.lines[child] = key_node.start_mark.line + 1
            _index(value_node, child, located)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            located.lines[keys + (i,)] = item.start_mark.line + 1
            _index(item, keys + (i,), located)


def is_number(value: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mapping(value: Any, keys: KeyPath, loc: Located, allowed: set[str] | None = None) -> dict[Any, Any]:
    """Return ``value`` when it is a mapping whose keys are all in ``allowed`` (any key when None)."""
    if not isinstance(value, dict):
        raise loc.error(keys, f"expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise loc.error(keys + (key,), f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return value


def number(value: Any, keys: KeyPath, loc: Located, *, integer: bool = False, positive: bool = False,
           minimum: float | None = None) -> float | int:
    """Return ``value`` when it is a finite number (an integer, > 0, >= ``minimum`` as asked)."""
    if integer and not (isinstance(value, int) and not isinstance(value, bool)):
        raise loc.error(keys, f"must be an integer, got {value!r}")
    if not is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        raise loc.error(keys, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise loc.error(keys, f"must be > 0, got {value!r}")
    if minimum is not None and value < minimum:
        raise loc.error(keys, f"must be >= {minimum:g}, got {value!r}")
    return value
