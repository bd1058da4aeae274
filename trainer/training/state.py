"""What changes from step to step, what one step's schedules say, and why a run stopped early.

``TrainState`` is everything a checkpoint restores besides weights, optimiser and RNG: the
data position, the quality controller's multipliers, the best objective. ``step_hparams``
is a pure function of (config, step, state): a resumed run gets exactly the same schedule
from its saved step count, and the loss gets this step's weights as an argument instead of
any module attribute being changed while training. ``StopReason`` says who ended a run
before ``max_steps`` and why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from trainer.training import schedules
from trainer.training.losses import LossWeights

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["BY_CALLBACK", "BY_CONTROLLER", "StepHParams", "StopReason", "TrainState", "step_hparams"]

BY_CONTROLLER = "controller"  # the quality controller's stop decision
BY_CALLBACK = "callback"  # the caller's callback returned True (the tuner's pruner or gates, say)


@dataclass
class TrainState:
    """What changes while training and what a checkpoint restores besides weights and optimiser.

    ``step`` counts optimiser steps done; ``epoch`` and ``batch`` (the next batch within the
    epoch) fix the data position, so a resume sees the same batches. The multipliers are
    the quality controller's (1.0 until it intervenes). ``frames_per_char`` is the training
    corpus's mel frames per text token (the adaptive stop gate's length estimate).
    ``best_metric`` is the best value so far of ``config.selection_metric`` (the one of best.pt).
    ``warm_started``: the weights came from a trained checkpoint (see ``gate_progress``).
    """

    base_lr: float
    frames_per_char: float
    step: int = 0
    epoch: int = 0
    batch: int = 0
    lr_scale: float = 1.0
    ga_boost: float = 1.0
    gate_boost: float = 1.0
    best_metric: float = math.nan  # nothing validated yet
    warm_started: bool = False

    def gate_progress(self, max_steps: int) -> float:
        """Return how trained the stop gate is, in [0, 1], for the adaptive inference threshold.

        From scratch: the share of the budget done, since a young gate is timid and needs a low
        bar to stop at all. Warm-started: 1, since the gate comes trained; scoring a fine-tuning
        run's first validation with a low bar and its last with a high one would make its
        free-running figures drift with the schedule rather than with the model.
        """
        return 1.0 if self.warm_started else self.step / max(max_steps, 1)

    def position(self) -> dict[str, int]:
        """Return the checkpoint's ``position`` entry: step, epoch, batch."""
        return {"step": self.step, "epoch": self.epoch, "batch": self.batch}

    def schedule(self) -> dict[str, float]:
        """Return the checkpoint's ``schedule`` entry: the multipliers, best metric and corpus rate."""
        return {"lr_scale": self.lr_scale, "ga_boost": self.ga_boost, "gate_boost": self.gate_boost,
                "best_metric": self.best_metric, "frames_per_char": self.frames_per_char, "base_lr": self.base_lr,
                "warm_started": self.warm_started}

    def restore(self, payload: dict[str, Any]) -> None:
        """Take position and schedule from a checkpoint's payload (a missing schedule key keeps its value)."""
        known = set(asdict(self))
        for key, value in {**payload["position"], **payload["schedule"]}.items():
            if key in known:
                setattr(self, key, type(getattr(self, key))(value))


@dataclass(frozen=True)
class StepHParams:
    """What the schedules, phases and controller say for one optimiser step."""

    lr: float
    tf_ratio: float  # probability of feeding the ground-truth frame
    loss_weights: LossWeights  # guided-attention weight and sigma, gate weight
    phase: schedules.Phase | None  # None when phases are off


def step_hparams(config: TrainConfig, step: int, state: TrainState) -> StepHParams:
    """Return step ``step``'s learning rate, teacher-forcing ratio and loss weights (pure).

    The learning rate is the warm-up/cosine schedule × the phase's multiplier (with
    ``phases``) × the controller's ``lr_scale``; the guided-attention weight is the decaying
    schedule's, or the phase's, × the controller's ``ga_boost``; the gate weight is the
    config's × ``gate_boost``.
    """
    lr = schedules.lr_at(step, state.base_lr, config.warmup_steps, config.lr_restart_period,
                         config.lr_restart_mult, config.min_learning_rate)
    ga_weight = schedules.guided_attention_weight(step, config.ga_weight, config.ga_decay, config.ga_weight_floor)
    phase = schedules.phase_at(step, config.max_steps) if config.phases else None
    if phase is not None:
        lr *= phase.lr_mult
        ga_weight = phase.ga_weight
    weights = LossWeights(
        ga_weight=ga_weight * state.ga_boost,
        ga_sigma=schedules.guided_attention_sigma(step, config.ga_sigma_start, config.ga_sigma_end,
                                                  config.ga_sigma_anneal_steps),
        gate_weight=config.gate_weight * state.gate_boost)
    tf_ratio = schedules.teacher_forcing_ratio(step, config.tf_hold_steps, config.tf_decay_steps, config.tf_floor)
    return StepHParams(lr * state.lr_scale, tf_ratio, weights, phase)


@dataclass(frozen=True)
class StopReason:
    """Why a run ended before ``max_steps``: who stopped it (``BY_CONTROLLER``, ``BY_CALLBACK``) and why, in one line.

    For the controller, ``detection`` is its stop decision's (e.g. ``no_improvement``) and
    ``reason`` reads "detection: why" (``no_improvement: fr_mcd not better than ... for 10
    validations``); for the callback, ``detection`` is None.
    """

    by: str
    reason: str
    detection: str | None = None

    def record(self) -> dict[str, str | None]:
        """Return the ``end`` record's fields: stopped_by, detection, reason."""
        return {"stopped_by": self.by, "detection": self.detection, "reason": self.reason}
