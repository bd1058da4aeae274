"""Acoustic-model architecture names and their factories: the leaf the config consults.

``ModelConfig.architecture`` names an entry here. Entries are kept untyped (a factory, or
the ``module:attribute`` import path of a built-in one, imported on first use), so this
module needs neither the config type nor any model code: the config checks a name without
importing a model, and ``trainer.model.architectures``, which registers and builds with
the types, sits above both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["BUILT_IN", "add", "architecture_names", "lookup", "remove"]

BUILT_IN = "tacotron2"  # the architecture a config names by default; it cannot be removed

_FACTORIES: dict[str, Callable[[Any], object] | str] = {BUILT_IN: "trainer.model.tacotron2:Tacotron2"}


def add(name: str, factory: Callable[[Any], object], replace: bool = False) -> None:
    """Make ``factory`` the entry of ``name``; ValueError for a blank name or a taken one without ``replace``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _FACTORIES and not replace:
        raise ValueError(f"architecture {name!r} is already registered (pass replace=True to swap it)")
    _FACTORIES[name] = factory


def remove(name: str) -> None:
    """Forget ``name`` (absent: nothing to do); the built-in one cannot be removed."""
    if name == BUILT_IN:
        raise ValueError(f"the built-in architecture {BUILT_IN!r} cannot be unregistered")
    _FACTORIES.pop(name, None)


def architecture_names() -> tuple[str, ...]:
    """Return the registered architecture names, built-in ones first."""
    return tuple(_FACTORIES)


def lookup(name: str) -> Callable[[Any], object]:
    """Return the factory of ``name`` (a built-in one imported now, once); KeyError for an unknown name."""
    entry = _FACTORIES[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)  # lazy: model code only when a model is built
        _FACTORIES[name] = entry
    return entry
