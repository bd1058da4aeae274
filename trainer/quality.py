"""The quality controller (SPEC item 9) and the composite quality score.

Pure logic over metric histories: the controller never touches a model, an optimiser or a
file. The training loop hands it each validation's metrics (``observe``) and gets back
``Decision`` records; it carries out the actions (change a multiplier, restore the last
good checkpoint, stop) and logs ``Decision.to_record()``. That split is what lets every
rule be unit-tested on scripted histories.

Detections, in the order they are checked at one validation:

1. ``nonfinite_loss``: a watched loss (training, validation, objective) is NaN or ±inf.
   Roll back to the last good checkpoint and lower the learning rate; with nothing to
   roll back to (no good validation yet, or the rollback limit reached) stop, because
   weights that produce NaN on validation do not recover by training on.
2. ``exploding_loss``: a watched loss above ``explosion_factor`` × the best of its last
   ``explosion_window`` accepted values. Roll back (when possible) and lower the learning
   rate; training goes on either way.
   After 1 or 2 nothing else is judged at this validation (the other figures come from a
   broken model) and the values are kept out of the histories.
3. ``misalignment``: diagonality below ``misalignment_diagonality`` once
   ``alignment_warmup_steps`` have passed. Raise the guided-attention weight.
4. ``gate_failure``: gate balanced accuracy below ``gate_balanced_accuracy`` once
   ``gate_judge_after_steps`` have passed. Raise the gate-loss weight, unless the same
   validation is misaligned: a stop gate cannot find the end of an utterance the
   attention does not follow, so the fix is deferred to the alignment (``none_deferred``).
5. ``overfitting``: over the last ``overfit_window`` accepted validations the validation
   loss trends up (least-squares slope > 0, fitted rise ≥ ``overfit_min_rise`` × its mean)
   while the training loss trends down (slope < 0). Lower the learning rate the first
   ``overfit_lr_cuts`` times, then stop.
6. ``no_improvement``: the objective (minimised) has not improved by more than
   ``min_delta`` for ``patience`` accepted validations. Stop (the early-stop controller).

Every intervention has a limit; one that is due but over its limit is recorded with the
action ``none_limit_reached``. Raising a weight or lowering the rate for the same
detection again waits ``cooldown`` validations (``none_cooldown``), so one slow-to-act
fix is not stacked to its limit on consecutive validations. A validation whose losses are
finite and not exploding is "good": ``last_good_step`` moves there, and the loop saves the
checkpoint a rollback returns to. Misalignment, gate failure or a stalled objective do not
disqualify it: they describe how far training has got, not broken weights, and early in a
run every validation is misaligned, so requiring none would leave nothing to roll back to.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ACTIONS",
    "DETECTIONS",
    "ControllerConfig",
    "Decision",
    "QualityController",
    "QUALITY_WEIGHTS",
    "quality_score",
]

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
)


@dataclass
class ControllerConfig:
    """Thresholds, limits and metric names of the quality controller. Steps are optimiser steps."""

    # --- which metrics to read (keys of the dict passed to observe) ---
    diagonality_metric: str = "tf_diagonality"
    gate_metric: str = "tf_gate_balanced_accuracy"
    objective_metric: str = "val_mel_postnet_l1"  # minimised
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
    def for_budget(cls, total_steps: int, **overrides: Any) -> "ControllerConfig":
        """Return a config whose judging steps follow the phases of a ``total_steps`` budget.

        Misalignment is judged from the end of the pre-alignment phase and the gate from the
        end of the alignment-learning phase (``schedules.phase_boundaries``: 1/7 and 4/7 of
        the budget), so short runs are not judged before they could have aligned.
        ``overrides`` set any other field.
        """
        from trainer.schedules import phase_boundaries

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


def _slope(xs: list[float], ys: list[float]) -> float:
    """Return the least-squares slope of ys over xs (0 when xs are all equal)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var > 0 else 0.0


class QualityController:
    """Watches validations and decides interventions; see the module docstring for the rules.

    Mutable outcome, read after each ``observe``: ``lr_scale``, ``ga_boost``, ``gate_boost``
    (cumulative multipliers, 1.0 at the start), ``stop_requested``, ``last_good_step``.
    """

    _HISTORY_KEYS = ("train", "val", "objective")

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.lr_scale = 1.0
        self.ga_boost = 1.0
        self.gate_boost = 1.0
        self.ga_boosts = 0
        self.gate_boosts = 0
        self.lr_cuts = 0
        self.overfit_cuts = 0
        self.rollbacks = 0
        self.stop_requested = False
        self.last_good_step: int | None = None
        self.best_objective = math.inf
        self.best_step: int | None = None
        self.since_improvement = 0
        self.validations = 0
        self.cooldowns: dict[str, int] = {}  # detection -> validations left
        # Accepted (finite, not exploding) values as [step, value] pairs, newest last.
        self.history: dict[str, list[list[float]]] = {key: [] for key in self._HISTORY_KEYS}

    # ----------------------------------------------------------------- public

    def multipliers(self) -> dict[str, float]:
        """Return {"lr_scale", "ga_boost", "gate_boost"}: the current cumulative multipliers (unitless)."""
        return {"lr_scale": self.lr_scale, "ga_boost": self.ga_boost, "gate_boost": self.gate_boost}

    def observe(self, step: int, metrics: Mapping[str, float]) -> list[Decision]:
        """Judge one validation at optimiser ``step`` and return its decisions (empty: nothing wrong).

        ``metrics`` maps names to floats (missing names are not judged). The returned
        decisions are already applied to this controller's multipliers and counters; the
        caller carries them out on the model/optimiser. A "stop" decision sets
        ``stop_requested``; the caller should end training there (later calls still judge,
        but no_improvement does not stop a second time).
        """
        self.validations += 1
        self.cooldowns = {k: v - 1 for k, v in self.cooldowns.items() if v > 1}
        decisions: list[Decision] = []
        losses = self._watched_losses(metrics)

        bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
        if bad:
            self._handle_breakdown(step, "nonfinite_loss", bad, decisions, stop_without_rollback=True)
            return decisions
        exploding = self._explosions(losses)
        if exploding:
            self._handle_breakdown(step, "exploding_loss", exploding, decisions, stop_without_rollback=False)
            return decisions

        self._record_history(step, metrics)
        misaligned = self._check_alignment(step, metrics, decisions)
        self._check_gate(step, metrics, misaligned, decisions)
        self._check_overfitting(step, decisions)
        self._check_improvement(step, metrics, decisions)
        if losses:
            self.last_good_step = step
        return decisions

    def state_dict(self) -> dict[str, Any]:
        """Return the controller's state as plain values (ints, floats, lists, dicts) for a checkpoint."""
        return {
            "config": asdict(self.config),
            "lr_scale": self.lr_scale, "ga_boost": self.ga_boost, "gate_boost": self.gate_boost,
            "ga_boosts": self.ga_boosts, "gate_boosts": self.gate_boosts, "lr_cuts": self.lr_cuts,
            "overfit_cuts": self.overfit_cuts, "rollbacks": self.rollbacks,
            "stop_requested": self.stop_requested, "last_good_step": self.last_good_step,
            "best_objective": self.best_objective, "best_step": self.best_step,
            "since_improvement": self.since_improvement, "validations": self.validations,
            "cooldowns": dict(self.cooldowns),
            "history": {k: [list(p) for p in v] for k, v in self.history.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore counters, multipliers and histories from ``state_dict()``; the config stays this object's own."""
        for key in ("lr_scale", "ga_boost", "gate_boost", "best_objective"):
            setattr(self, key, float(state[key]))
        for key in ("ga_boosts", "gate_boosts", "lr_cuts", "overfit_cuts", "rollbacks", "since_improvement",
                    "validations"):
            setattr(self, key, int(state[key]))
        self.stop_requested = bool(state["stop_requested"])
        self.last_good_step = None if state["last_good_step"] is None else int(state["last_good_step"])
        self.best_step = None if state["best_step"] is None else int(state["best_step"])
        self.cooldowns = {str(k): int(v) for k, v in state["cooldowns"].items()}
        self.history = {k: [[float(s), float(v)] for s, v in state["history"].get(k, [])]
                        for k in self._HISTORY_KEYS}

    # --------------------------------------------------------------- detection

    def _watched_losses(self, metrics: Mapping[str, float]) -> dict[str, float]:
        names = (self.config.train_loss_metric, self.config.val_loss_metric, self.config.objective_metric)
        return {name: float(metrics[name]) for name in dict.fromkeys(names) if name in metrics}

    def _reference_key(self, name: str) -> str:
        if name == self.config.train_loss_metric:
            return "train"
        if name == self.config.val_loss_metric:
            return "val"
        return "objective"

    def _explosions(self, losses: dict[str, float]) -> dict[str, float]:
        """Return {name: value, name + "_reference": best recent} for each exploding loss."""
        found: dict[str, float] = {}
        for name, value in losses.items():
            recent = [v for _, v in self.history[self._reference_key(name)][-self.config.explosion_window:]]
            if not recent:
                continue
            reference = min(recent)
            # Only a positive reference gives the ratio a meaning (losses here are >= 0).
            if reference > 0 and value > self.config.explosion_factor * reference:
                found[name] = value
                found[f"{name}_reference"] = reference
        return found

    def _record_history(self, step: int, metrics: Mapping[str, float]) -> None:
        keep = max(self.config.overfit_window, self.config.explosion_window)
        names = {"train": self.config.train_loss_metric, "val": self.config.val_loss_metric,
                 "objective": self.config.objective_metric}
        for key, name in names.items():
            if name in metrics:
                self.history[key].append([float(step), float(metrics[name])])
                del self.history[key][:-keep]

    def _check_alignment(self, step: int, metrics: Mapping[str, float], decisions: list[Decision]) -> bool:
        """Return True when this validation is misaligned (and append the decision)."""
        cfg = self.config
        value = metrics.get(cfg.diagonality_metric)
        if value is None or step < cfg.alignment_warmup_steps:
            return False
        value = float(value)
        if not value < cfg.misalignment_diagonality:  # NaN diagonality is not judged
            return False
        evidence = {cfg.diagonality_metric: value, "threshold": cfg.misalignment_diagonality}
        reason = f"{cfg.diagonality_metric} {value:.3f} < {cfg.misalignment_diagonality} after warm-up"
        decisions.append(self._boost(step, "misalignment", evidence, reason, "ga"))
        return True

    def _check_gate(self, step: int, metrics: Mapping[str, float], misaligned: bool,
                    decisions: list[Decision]) -> None:
        cfg = self.config
        value = metrics.get(cfg.gate_metric)
        if value is None or step < cfg.gate_judge_after_steps:
            return
        value = float(value)
        if not value < cfg.gate_balanced_accuracy:
            return
        evidence = {cfg.gate_metric: value, "threshold": cfg.gate_balanced_accuracy}
        reason = f"{cfg.gate_metric} {value:.3f} < {cfg.gate_balanced_accuracy}"
        if misaligned:
            decisions.append(Decision(step, "gate_failure", "none_deferred", evidence, {},
                                      reason + "; deferred: the attention is misaligned"))
            return
        decisions.append(self._boost(step, "gate_failure", evidence, reason, "gate"))

    def _check_overfitting(self, step: int, decisions: list[Decision]) -> None:
        cfg = self.config
        train, val = self.history["train"], self.history["val"]
        n = cfg.overfit_window
        if len(train) < n or len(val) < n:
            return
        val_steps, val_values = [p[0] for p in val[-n:]], [p[1] for p in val[-n:]]
        train_slope = _slope([p[0] for p in train[-n:]], [p[1] for p in train[-n:]])
        val_slope = _slope(val_steps, val_values)
        rise = val_slope * (val_steps[-1] - val_steps[0])
        mean_val = abs(sum(val_values) / n)
        if not (val_slope > 0 and train_slope < 0 and rise >= cfg.overfit_min_rise * mean_val):
            return
        evidence = {"val_slope": val_slope, "train_slope": train_slope, "val_rise": rise,
                    "window": float(n)}
        reason = (f"{cfg.val_loss_metric} rose by {rise:.4g} over the last {n} validations "
                  f"while {cfg.train_loss_metric} fell")
        if self.cooldowns.get("overfitting"):
            decisions.append(Decision(step, "overfitting", "none_cooldown", evidence,
                                      {"validations_left": self.cooldowns["overfitting"]}, reason))
        elif self.overfit_cuts < cfg.overfit_lr_cuts and self.lr_cuts < cfg.max_lr_cuts:
            self.overfit_cuts += 1
            self._start_cooldown("overfitting")
            decisions.append(self._cut_lr(step, "overfitting", evidence, reason))
        else:
            decisions.append(self._stop(step, "overfitting", evidence, reason + "; learning-rate cuts spent"))

    def _check_improvement(self, step: int, metrics: Mapping[str, float], decisions: list[Decision]) -> None:
        cfg = self.config
        if cfg.objective_metric not in metrics:
            return
        value = float(metrics[cfg.objective_metric])
        if value < self.best_objective - cfg.min_delta:
            self.best_objective, self.best_step, self.since_improvement = value, step, 0
            return
        self.since_improvement += 1
        if self.since_improvement < cfg.patience or self.stop_requested:
            return
        evidence = {cfg.objective_metric: value, "best": self.best_objective,
                    "best_step": float(self.best_step if self.best_step is not None else -1),
                    "validations_without_improvement": float(self.since_improvement)}
        reason = (f"{cfg.objective_metric} not better than {self.best_objective:.4g} (step {self.best_step}) "
                  f"by more than {cfg.min_delta} for {self.since_improvement} validations")
        decisions.append(self._stop(step, "no_improvement", evidence, reason))

    # ----------------------------------------------------------------- actions

    def _handle_breakdown(self, step: int, detection: str, evidence: dict[str, float], decisions: list[Decision],
                          stop_without_rollback: bool) -> None:
        cfg = self.config
        what = ", ".join(f"{k} {v:.4g}" for k, v in evidence.items() if not k.endswith("_reference"))
        reason = f"{detection.replace('_', ' ')}: {what}"
        rolled_back = False
        if self.last_good_step is None:
            decisions.append(Decision(step, detection, "none_no_checkpoint", evidence, {},
                                      reason + "; no good validation to roll back to"))
        elif self.rollbacks >= cfg.max_rollbacks:
            decisions.append(self._limit(step, detection, evidence, reason, "max_rollbacks", self.rollbacks))
        else:
            self.rollbacks += 1
            rolled_back = True
            decisions.append(Decision(step, detection, "rollback", evidence, {"to_step": self.last_good_step},
                                      reason + f"; back to step {self.last_good_step}"))
        decisions.append(self._cut_lr(step, detection, evidence, reason))
        if stop_without_rollback and not rolled_back:
            decisions.append(self._stop(step, detection, evidence, reason + "; cannot roll back"))

    def _start_cooldown(self, detection: str) -> None:
        if self.config.cooldown > 0:
            # +1 because the next observe() decrements before judging.
            self.cooldowns[detection] = self.config.cooldown + 1

    def _boost(self, step: int, detection: str, evidence: dict[str, float], reason: str, which: str) -> Decision:
        """Return the decision raising the "ga" or "gate" multiplier (or why not)."""
        cfg = self.config
        if self.cooldowns.get(detection):
            return Decision(step, detection, "none_cooldown", evidence,
                            {"validations_left": self.cooldowns[detection]}, reason)
        if which == "ga":
            used, limit, factor, cap, current = (self.ga_boosts, cfg.max_ga_boosts, cfg.ga_boost_factor,
                                                 cfg.max_ga_boost, self.ga_boost)
            limit_name, action, key = "max_ga_boosts", "raise_guided_attention", "ga_boost"
        else:
            used, limit, factor, cap, current = (self.gate_boosts, cfg.max_gate_boosts, cfg.gate_boost_factor,
                                                 cfg.max_gate_boost, self.gate_boost)
            limit_name, action, key = "max_gate_boosts", "raise_gate_weight", "gate_boost"
        if used >= limit or current >= cap:
            name = limit_name if used >= limit else limit_name.replace("boosts", "boost")
            return self._limit(step, detection, evidence, reason, name, used)
        new = min(current * factor, cap)
        if which == "ga":
            self.ga_boost, self.ga_boosts = new, self.ga_boosts + 1
        else:
            self.gate_boost, self.gate_boosts = new, self.gate_boosts + 1
        self._start_cooldown(detection)
        return Decision(step, detection, action, evidence, {key: new, "factor": new / current},
                        reason + f"; {key} {current:g} -> {new:g}")

    def _cut_lr(self, step: int, detection: str, evidence: dict[str, float], reason: str) -> Decision:
        cfg = self.config
        if self.lr_cuts >= cfg.max_lr_cuts:
            return self._limit(step, detection, evidence, reason, "max_lr_cuts", self.lr_cuts)
        old = self.lr_scale
        self.lr_scale *= cfg.lr_cut_factor
        self.lr_cuts += 1
        return Decision(step, detection, "lower_learning_rate", evidence,
                        {"lr_scale": self.lr_scale, "factor": cfg.lr_cut_factor},
                        reason + f"; lr_scale {old:g} -> {self.lr_scale:g}")

    def _stop(self, step: int, detection: str, evidence: dict[str, float], reason: str) -> Decision:
        if not self.config.early_stop and detection in ("no_improvement", "overfitting"):
            return self._limit(step, detection, evidence, reason + " (early stop disabled)", "early_stop", 0)
        self.stop_requested = True
        return Decision(step, detection, "stop", evidence, {}, reason)

    def _limit(self, step: int, detection: str, evidence: dict[str, float], reason: str, limit: str,
               used: int) -> Decision:
        return Decision(step, detection, "none_limit_reached", evidence, {"limit": limit, "used": used},
                        reason + f"; limit {limit} reached")


# ------------------------------------------------------------------ quality score

# Component weights of quality_score (sum 1.0 over the teacher-forced components; the two
# free-running components add 0.25 more when present, and all are renormalised).
QUALITY_WEIGHTS: dict[str, float] = {
    "diagonality": 0.30,
    "focus": 0.15,
    "monotonicity": 0.10,
    "coverage": 0.15,
    "gate": 0.30,
    "stop": 0.15,
    "hit_max": 0.10,
}


def quality_score(metrics: Mapping[str, float], prefix: str = "tf_") -> float:
    """Return the composite quality of one validation, a float in [0, 1] (1 = perfect).

    score = Σ_i w_i·c_i / Σ_i w_i over the components i present in ``metrics``:

    ======================  ====================================================  =====
    component c_i           value (clipped to [0, 1])                             w_i
    ======================  ====================================================  =====
    diagonality             metrics[prefix + "diagonality"]                       0.30
    focus                   metrics[prefix + "focus"]                             0.15
    monotonicity            metrics[prefix + "monotonicity"]                      0.10
    coverage                metrics[prefix + "coverage"]                          0.15
    gate                    2·metrics[prefix + "gate_balanced_accuracy"] − 1      0.30
    stop                    1 − min(metrics["fr_stop_error"], 1)                  0.15
    hit_max                 1 − metrics["fr_hit_max_rate"]                        0.10
    ======================  ====================================================  =====

    A weighted arithmetic mean, not a geometric one: an untrained model scores low on
    every component at once, and a geometric mean would pin it at 0 from the first zero
    component and stop ranking young trials. The gate's balanced accuracy is rescaled so
    chance (0.5, always "continue") counts 0. The stop components always read the
    free-running keys ``fr_stop_error``/``fr_hit_max_rate`` whatever ``prefix`` is.

    Missing metrics: a component whose key is absent is left out and the weights of the
    present ones renormalised; a key present with a non-finite value counts as 0 (a NaN
    metric comes from a broken model and must not lift the score). Raises ValueError when
    no component is present at all.
    """
    keys = {
        "diagonality": (f"{prefix}diagonality", lambda v: v),
        "focus": (f"{prefix}focus", lambda v: v),
        "monotonicity": (f"{prefix}monotonicity", lambda v: v),
        "coverage": (f"{prefix}coverage", lambda v: v),
        "gate": (f"{prefix}gate_balanced_accuracy", lambda v: 2.0 * v - 1.0),
        "stop": ("fr_stop_error", lambda v: 1.0 - min(v, 1.0)),
        "hit_max": ("fr_hit_max_rate", lambda v: 1.0 - v),
    }
    total = weights = 0.0
    for component, (key, transform) in keys.items():
        if key not in metrics:
            continue
        value = float(metrics[key])
        score = min(max(transform(value), 0.0), 1.0) if math.isfinite(value) else 0.0
        total += QUALITY_WEIGHTS[component] * score
        weights += QUALITY_WEIGHTS[component]
    if weights == 0.0:
        raise ValueError(f"quality_score: none of the quality metrics (prefix {prefix!r}) is present")
    return total / weights
