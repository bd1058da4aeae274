"""Acoustic-model architectures by name, and ``build_model``: the one place a model is constructed.

``ModelConfig.architecture`` names the architecture. Another architecture is one new module
that calls ``register_architecture`` with a factory ``TrainConfig -> AcousticModel``. The
names and factories themselves are kept in ``trainer.model.registry``, a leaf, so that the
config can check a name without importing this module's types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trainer.model import registry
from trainer.model.contract import AcousticModel

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["Factory", "build_model", "register_architecture", "unregister_architecture"]

Factory = Callable[["TrainConfig"], AcousticModel]


def register_architecture(name: str, factory: Factory, replace: bool = False) -> None:
    """Make ``factory`` build the models whose config names ``architecture: name``."""
    registry.add(name, factory, replace)


def unregister_architecture(name: str) -> None:
    """Forget ``name`` (for tests that register a toy architecture); the built-in one cannot be removed."""
    registry.remove(name)


def build_model(config: TrainConfig) -> AcousticModel:
    """Return a new model of ``config.model.architecture`` for ``config`` (on the CPU, in training mode).

    A factory that returns anything but an ``AcousticModel`` is a bug in its module: TypeError names it.
    """
    name = config.model.architecture
    model = registry.lookup(name)(config)
    if not isinstance(model, AcousticModel):
        raise TypeError(f"architecture {name!r}: its factory returned {type(model).__name__}, not an AcousticModel")
    return model
