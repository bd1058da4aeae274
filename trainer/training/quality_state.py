"""What the quality controller is set with, remembers and says: its settings, its state, its decisions.

``ControllerConfig`` holds thresholds, limits, which metrics to read and which config keys
are not its to change; ``ControllerState`` everything it remembers between validations, as
plain values a checkpoint stores; ``Decision`` one detection and what was done about it;
``INTERVENTIONS`` the knob each intervention turns. The rules that move from one state to the
next are ``trainer.training.quality``'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from trainer.training.schedules import phase_boundaries

__all__ = ["ACTIONS", "DETECTIONS", "HISTORY_KEYS", "INTERVENTIONS", "ControllerConfig", "ControllerState", "Decision",
           "Intervention"]

DETECTIONS = ("nonfinite_loss", "exploding_loss", "misalignment", "gate_failure", "overfitting", "no_improvement")

ACTIONS = (
    "raise_guided_attention",  # parameters: ga_boost (new cumulative multiplier), factor
    "raise_gate_weight",  # parameters: gate_boost (new cumulative multiplier), factor
    "lower_learning_rate",  # parameters: lr_scale (new cumulative multiplier), factor
    "rollback",  # parameters: to_step (the last good validation's step)
    "stop",  # training should end after this validation
    "none_limit_reached",  # parameters: limit (config field), used
    "none_cooldown",  # parameters: validations_left
    "none_no_checkpoint",  # a rollback was due but no validation has been good yet
    "none_deferred",  # gate failure while misaligned: the alignment is fixed first
    "none_left_to_tuner",  # parameters: key (a frozen config key), action (the intervention not made)
)


@dataclass(frozen=True)
class Intervention:
    """A knob the controller turns: its multiplier (a ``ControllerState`` field) and the config key it scales."""

    multiplier: str
    config_key: str


# The one table of what each intervention changes. When its config key is frozen (a tuner's
# study samples it, ``TrainConfig.controller_frozen_keys``) the intervention is not made.
INTERVENTIONS: dict[str, Intervention] = {
    "raise_guided_attention": Intervention("ga_boost", "ga_weight"),
    "raise_gate_weight": Intervention("gate_boost", "gate_weight"),
    "lower_learning_rate": Intervention("lr_scale", "learning_rate"),
}


@dataclass
class ControllerConfig:
    """Thresholds, limits and metric names of the quality controller. Steps are optimiser steps."""

    # --- which metrics to read (keys of the dict passed to observe) ---
    diagonality_metric: str = "tf_diagonality"
    gate_metric: str = "tf_gate_balanced_accuracy"
    objective_metric: str = "val_mel_postnet_l1"  # the run's best_metric: what no_improvement watches
    objective_maximized: bool = False  # its direction (the registry's): False, lower is better
    # Also watched for explosions (with the training and validation losses): only a
    # teacher-forced loss; a free-running figure jumps whenever a sentence stops early once.
    objective_is_loss: bool = True
    train_loss_metric: str = "train_loss"
    val_loss_metric: str = "val_total"

    # --- detection ---
    misalignment_diagonality: float = 0.7
    alignment_warmup_steps: int = 1000  # misalignment is not judged before this step
    gate_balanced_accuracy: float = 0.8  # chance is 0.5
    gate_judge_after_steps: int = 2000
    explosion_factor: float = 3.0
    explosion_window: int = 5  # validations whose best (lowest) loss is the reference
    overfit_window: int = 5  # validations in the trend fit (>= 3)
    overfit_min_rise: float = 0.01  # fitted rise of the validation loss, relative to its mean
    patience: int = 10  # validations without improvement before stopping
    min_delta: float = 0.0  # an improvement must lower the objective by more than this
    cooldown: int = 2  # validations before the same weight/rate intervention repeats
    early_stop: bool = True  # False: no_improvement and overfitting never stop the run

    # --- limits ---
    max_ga_boosts: int = 3
    ga_boost_factor: float = 2.0
    max_ga_boost: float = 8.0  # cap on the cumulative guided-attention multiplier
    max_gate_boosts: int = 2
    gate_boost_factor: float = 2.0
    max_gate_boost: float = 4.0
    max_lr_cuts: int = 3  # shared by explosion, non-finite loss and overfitting
    lr_cut_factor: float = 0.5
    overfit_lr_cuts: int = 1  # LR cuts spent on overfitting before it stops the run
    max_rollbacks: int = 2

    # --- config keys the controller must not change (INTERVENTIONS names the key of each) ---
    frozen_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.overfit_window < 3:
            raise ValueError(f"overfit_window must be >= 3, got {self.overfit_window}")
        if self.explosion_window < 1 or self.patience < 1 or self.cooldown < 0:
            raise ValueError("explosion_window and patience must be >= 1, cooldown >= 0")
        if self.explosion_factor <= 1.0 or self.ga_boost_factor <= 1.0 or self.gate_boost_factor <= 1.0:
            raise ValueError("explosion_factor, ga_boost_factor and gate_boost_factor must be > 1")
        if not 0.0 < self.lr_cut_factor < 1.0:
            raise ValueError(f"lr_cut_factor must be in (0, 1), got {self.lr_cut_factor}")

    @classmethod
    def for_budget(cls, total_steps: int, **overrides: Any) -> ControllerConfig:
        """Return a config whose judging steps follow the phases of a ``total_steps`` budget.

        Misalignment is judged from the end of the pre-alignment phase and the gate from the
        end of the alignment-learning phase (``schedules.phase_boundaries``: 1/7 and 4/7 of
        the budget), so short runs are not judged before they could have aligned.
        ``overrides`` set any other field.
        """
        bounds = phase_boundaries(total_steps)
        values: dict[str, Any] = {"alignment_warmup_steps": bounds[1], "gate_judge_after_steps": bounds[2]}
        values.update(overrides)
        return cls(**values)


@dataclass
class Decision:
    """One detection and what was done about it, at validation ``step``."""

    step: int
    detection: str  # one of DETECTIONS
    action: str  # one of ACTIONS
    evidence: dict[str, float] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        """Return a JSON-safe dict for ``metrics.jsonl``: kind "quality" and the fields.

        Non-finite floats in evidence/parameters become the strings "nan", "inf", "-inf".
        """
        return {"kind": "quality", "step": self.step, "detection": self.detection, "action": self.action,
                "evidence": _json_safe(self.evidence), "parameters": _json_safe(self.parameters),
                "reason": self.reason}


def _json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    # Strict JSON has no NaN; the strings keep the evidence readable instead of dropping it.
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()}


HISTORY_KEYS = ("train", "val", "objective")  # the watched losses kept for trends and references


@dataclass(frozen=True)
class ControllerState:
    """Everything the controller remembers between validations (plain values: a checkpoint stores it as is).

    ``lr_scale``, ``ga_boost`` and ``gate_boost`` are the cumulative multipliers (1.0 at the
    start) the training loop applies; the counts are what the limits are checked against;
    ``history`` holds the accepted (finite, not exploding) values of the watched losses as
    [step, value] pairs, newest last; ``cooldowns`` maps a detection to the validations left
    before its intervention may repeat. ``stop_detection`` and ``stop_reason`` are the newest
    stop decision's (empty until one is taken), so a run says why it stopped even when it stops
    on a request remembered from before a resume.
    """

    lr_scale: float = 1.0
    ga_boost: float = 1.0
    gate_boost: float = 1.0
    ga_boosts: int = 0
    gate_boosts: int = 0
    lr_cuts: int = 0
    overfit_cuts: int = 0
    rollbacks: int = 0
    stop_requested: bool = False
    stop_detection: str = ""
    stop_reason: str = ""
    last_good_step: int | None = None
    best_objective: float = math.inf
    best_step: int | None = None
    since_improvement: int = 0
    validations: int = 0
    cooldowns: dict[str, int] = field(default_factory=dict)
    history: dict[str, list[list[float]]] = field(default_factory=lambda: {key: [] for key in HISTORY_KEYS})

    def to_dict(self) -> dict[str, Any]:
        """Return the state as plain values (ints, floats, lists, dicts)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ControllerState:
        """Return the state saved by ``to_dict``; keys it does not know (an old checkpoint's ``config``) are ignored."""
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in values.items() if k in known})
        history = {k: [[float(s), float(v)] for s, v in state.history.get(k, [])] for k in HISTORY_KEYS}
        return replace(state, cooldowns={str(k): int(v) for k, v in state.cooldowns.items()}, history=history)
