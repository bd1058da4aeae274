"""What a worker and a trial's child both derive from the search space and the run's settings.

``TrialSetup`` is the one function from (space, settings) to what a trial is judged by: its
trainer config for sampled parameters, the objective, the quality gates and the pruner. The
parent builds it once per run; the child rebuilds it from its job (``TrialSetup.load``), so the
child's gates and pruner are the parent's by construction, not by copying fields across.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.errors import SpaceError
from tuner.space.load import load_space, with_vocoder
from tuner.space.samplers import build_pruner
from tuner.trial.protocol import RunSettings

if TYPE_CHECKING:
    import optuna

    from trainer.config import TrainConfig
    from tuner.space.spec import Gate, Objective, SearchSpace


def space_digest(space: SearchSpace) -> str:
    """Return the SHA-256 of the search-space file as it was read (hex)."""
    return hashlib.sha256(space.text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TrialSetup:
    """A run's search space with its settings: each trial's config, objective, gates and pruner."""

    space: SearchSpace
    settings: RunSettings

    @classmethod
    def load(cls, settings: RunSettings) -> TrialSetup:
        """Return the setup of ``settings``, reading its space file (SpaceError when it changed since the run began)."""
        space = load_space(Path(settings.space))
        if space_digest(space) != settings.space_sha256:
            raise SpaceError(f"{settings.space}: the search-space file changed after this study's worker read it; "
                             "restart the worker to use the new file")
        if settings.vocoder is not None:
            config = Path(settings.vocoder_config) if settings.vocoder_config is not None else None
            space = with_vocoder(space, settings.vocoder, config)
        return cls(space.confirmation() if settings.confirmation else space, settings)

    @classmethod
    def of(cls, space: SearchSpace, *, preset: str, max_steps: int, data: str | Path,
           warm_start: str | Path | None = None) -> TrialSetup:
        """Return the setup of an already loaded ``space`` with these settings (no vocoder override)."""
        return cls(space, RunSettings(space=str(space.path), space_sha256=space_digest(space), preset=preset,
                                      max_steps=max_steps, data=str(data),
                                      warm_start=None if warm_start is None else str(warm_start)))

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """Return the trainer config of a trial with sampled ``params`` (and the run's held-out size, if capped)."""
        config = self.space.build_config(params, preset_name=self.settings.preset, max_steps=self.settings.max_steps)
        return config if self.settings.held_out is None else config.replace(val_size=self.settings.held_out)

    @property
    def objective(self) -> Objective:
        """What a trial returns (one metric or two)."""
        return self.space.study.objective

    @property
    def gates(self) -> tuple[Gate, ...]:
        """The quality gates a trial is pruned by."""
        return self.space.study.gates

    @functools.cached_property
    def val_interval(self) -> int:
        """Steps between two validations, of the space's default trial (the pruner is built once per study)."""
        return self.config(self.space.defaults_or_low()).val_interval

    def pruner(self) -> optuna.pruners.BasePruner:
        """Return the study's pruner, sized for this run's step budget and validation interval."""
        return build_pruner(self.space.study.pruner, self.objective.multi, self.settings.max_steps, self.val_interval)
