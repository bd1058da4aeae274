"""Acoustic-model architectures by name, and ``build_model``: the one place a model is constructed.

``ModelConfig.architecture`` names the architecture; a built-in one is given as an import
path and imported on first use, so this module stays a leaf that the config can consult
without importing any model code. Another architecture is one new module that calls
``register_architecture`` with a factory ``TrainConfig -> AcousticModel``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.model.contract import AcousticModel

__all__ = ["architecture_names", "build_model", "register_architecture", "unregister_architecture"]

Factory = Callable[["TrainConfig"], "AcousticModel"]

_FACTORIES: dict[str, Factory | str] = {"tacotron2": "trainer.model.tacotron2:Tacotron2"}


def register_architecture(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``factory`` build the models whose config names ``architecture: name``."""
    if not name or not isinstance(name, str):
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in _FACTORIES and not replace:
        raise ValueError(f"architecture {name!r} is already registered (pass replace=True to swap it)")
    _FACTORIES[name] = factory


def unregister_architecture(name: str) -> None:
    """Forget ``name`` (for tests that register a toy architecture); a built-in one cannot be removed."""
    if name == "tacotron2":
        raise ValueError("the built-in architecture 'tacotron2' cannot be unregistered")
    _FACTORIES.pop(name, None)


def architecture_names() -> tuple[str, ...]:
    """Return the registered architecture names, built-in ones first."""
    return tuple(_FACTORIES)


def _factory(name: str) -> Factory:
    entry = _FACTORIES[name]
    if isinstance(entry, str):
        module, _, attribute = entry.partition(":")
        entry = getattr(importlib.import_module(module), attribute)  # deliberate lazy import: see module docstring
        _FACTORIES[name] = entry
    return entry


def build_model(config: TrainConfig) -> AcousticModel:
    """Return a new model of ``config.model.architecture`` for ``config`` (on the CPU, in training mode)."""
    return _factory(config.model.architecture)(config)
