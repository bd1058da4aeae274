"""The quality controller: detections over metric histories, and what it does about them.

Pure logic over metric histories: the controller never touches a model, an optimiser or a
file. Its state is one frozen dataclass (``ControllerState``) and each rule is a small
function from (settings, state, validation) to (new state, decisions). The training loop
hands it each validation's metrics (``observe``) and gets back ``Decision`` records; it
carries out the actions (change a multiplier, restore the last good checkpoint, stop) and
logs ``Decision.to_record()``. That split is what lets every rule be unit-tested on
scripted histories, and lets a checkpoint store the state as plain values. The settings, the
state and the decisions are declared in ``trainer.training.quality_state``; the composite
quality score is ``trainer.evaluation.quality_score``'s.

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

Knobs the tuner owns: an intervention whose config key (``INTERVENTIONS``: ga_weight,
gate_weight, learning_rate) is in ``frozen_keys`` is not made. Its decision is
``none_left_to_tuner``, naming the key; the multiplier stays where it is (1.0) and the
intervention's own count and cooldown do not move. Everything else goes on as without it: a
rollback still rolls back, a stop still stops, and overfitting counts the learning-rate cut
it could not make, so it stops the run at the validation it would have stopped it at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from typing import Any

from trainer.training.quality_state import INTERVENTIONS, ControllerConfig, ControllerState, Decision

__all__ = ["QualityController", "observe"]

Rule = tuple[ControllerState, list[Decision]]


def observe(cfg: ControllerConfig, state: ControllerState, step: int, metrics: Mapping[str, float]) -> Rule:
    """Judge one validation at optimiser ``step``: return the new state and its decisions (empty: nothing wrong).

    ``metrics`` maps names to floats; missing names are not judged. A "stop" decision sets
    ``stop_requested``; later calls still judge, but no_improvement does not stop twice.
    """
    state = replace(state, validations=state.validations + 1,
                    cooldowns={k: v - 1 for k, v in state.cooldowns.items() if v > 1})
    losses = watched_losses(cfg, metrics)
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if bad:
        return breakdown(cfg, state, step, "nonfinite_loss", bad, stop_without_rollback=True)
    exploding = explosions(cfg, state, losses)
    if exploding:
        return breakdown(cfg, state, step, "exploding_loss", exploding, stop_without_rollback=False)
    state = record_history(cfg, state, step, metrics)
    decisions: list[Decision] = []
    for rule in (check_alignment, check_gate, check_overfitting, check_improvement):
        state, found = rule(cfg, state, step, metrics, decisions)
        decisions += found
    if losses:
        state = replace(state, last_good_step=step)
    return state, decisions


# --------------------------------------------------------------------------- detection


def watched_losses(cfg: ControllerConfig, metrics: Mapping[str, float]) -> dict[str, float]:
    """Return the training, validation and objective losses present in ``metrics``."""
    names = (cfg.train_loss_metric, cfg.val_loss_metric) + ((cfg.objective_metric,) if cfg.objective_is_loss else ())
    return {name: float(metrics[name]) for name in dict.fromkeys(names) if name in metrics}


def _history_key(cfg: ControllerConfig, name: str) -> str:
    if name == cfg.train_loss_metric:
        return "train"
    if name == cfg.val_loss_metric:
        return "val"
    return "objective"


def explosions(cfg: ControllerConfig, state: ControllerState, losses: dict[str, float]) -> dict[str, float]:
    """Return {name: value, name + "_reference": recent best} for each loss above ``explosion_factor`` x that best."""
    found: dict[str, float] = {}
    for name, value in losses.items():
        recent = [v for _, v in state.history[_history_key(cfg, name)][-cfg.explosion_window:]]
        if not recent:
            continue
        reference = min(recent)
        # Only a positive reference gives the ratio a meaning (losses here are >= 0).
        if reference > 0 and value > cfg.explosion_factor * reference:
            found[name] = value
            found[f"{name}_reference"] = reference
    return found


def record_history(cfg: ControllerConfig, state: ControllerState, step: int,
                   metrics: Mapping[str, float]) -> ControllerState:
    """Return ``state`` with this validation's watched losses appended to their (bounded) histories."""
    keep = max(cfg.overfit_window, cfg.explosion_window)
    history = {key: list(values) for key, values in state.history.items()}
    names = {"train": cfg.train_loss_metric, "val": cfg.val_loss_metric, "objective": cfg.objective_metric}
    for key, name in names.items():
        if name in metrics:
            history[key] = (history[key] + [[float(step), float(metrics[name])]])[-keep:]
    return replace(state, history=history)


def check_alignment(cfg: ControllerConfig, state: ControllerState, step: int, metrics: Mapping[str, float],
                    earlier: list[Decision]) -> Rule:
    """Misalignment: diagonality below the threshold once the warm-up has passed -> raise the GA weight."""
    value = metrics.get(cfg.diagonality_metric)
    if value is None or step < cfg.alignment_warmup_steps or not float(value) < cfg.misalignment_diagonality:
        return state, []  # NaN diagonality is not judged either
    value = float(value)
    evidence = {cfg.diagonality_metric: value, "threshold": cfg.misalignment_diagonality}
    reason = f"{cfg.diagonality_metric} {value:.3f} < {cfg.misalignment_diagonality} after warm-up"
    state, decision = _boost(cfg, state, step, "misalignment", evidence, reason, "ga")
    return state, [decision]


def check_gate(cfg: ControllerConfig, state: ControllerState, step: int, metrics: Mapping[str, float],
               earlier: list[Decision]) -> Rule:
    """Gate failure: balanced accuracy below the threshold -> raise the gate weight, unless misaligned now.

    A stop gate cannot find the end of an utterance the attention does not follow, so the
    fix waits for the alignment (``none_deferred``).
    """
    value = metrics.get(cfg.gate_metric)
    if value is None or step < cfg.gate_judge_after_steps or not float(value) < cfg.gate_balanced_accuracy:
        return state, []
    value = float(value)
    evidence = {cfg.gate_metric: value, "threshold": cfg.gate_balanced_accuracy}
    reason = f"{cfg.gate_metric} {value:.3f} < {cfg.gate_balanced_accuracy}"
    if any(d.detection == "misalignment" for d in earlier):
        return state, [Decision(step, "gate_failure", "none_deferred", evidence, {},
                                reason + "; deferred: the attention is misaligned")]
    state, decision = _boost(cfg, state, step, "gate_failure", evidence, reason, "gate")
    return state, [decision]


def _slope(xs: list[float], ys: list[float]) -> float:
    """Return the least-squares slope of ys over xs (0 when xs are all equal)."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var > 0 else 0.0


def check_overfitting(cfg: ControllerConfig, state: ControllerState, step: int, metrics: Mapping[str, float],
                      earlier: list[Decision]) -> Rule:
    """Overfitting: validation loss trending up while training loss trends down -> lower the LR, then stop."""
    train, val = state.history["train"], state.history["val"]
    n = cfg.overfit_window
    if len(train) < n or len(val) < n:
        return state, []
    val_steps, val_values = [p[0] for p in val[-n:]], [p[1] for p in val[-n:]]
    train_slope = _slope([p[0] for p in train[-n:]], [p[1] for p in train[-n:]])
    val_slope = _slope(val_steps, val_values)
    rise = val_slope * (val_steps[-1] - val_steps[0])
    mean_val = abs(sum(val_values) / n)
    if not (val_slope > 0 and train_slope < 0 and rise >= cfg.overfit_min_rise * mean_val):
        return state, []
    evidence = {"val_slope": val_slope, "train_slope": train_slope, "val_rise": rise, "window": float(n)}
    reason = (f"{cfg.val_loss_metric} rose by {rise:.4g} over the last {n} validations "
              f"while {cfg.train_loss_metric} fell")
    if state.cooldowns.get("overfitting"):
        return state, [Decision(step, "overfitting", "none_cooldown", evidence,
                                {"validations_left": state.cooldowns["overfitting"]}, reason)]
    if state.overfit_cuts < cfg.overfit_lr_cuts and state.lr_cuts < cfg.max_lr_cuts:
        state = _start_cooldown(cfg, replace(state, overfit_cuts=state.overfit_cuts + 1), "overfitting")
        state, decision = _cut_lr(cfg, state, step, "overfitting", evidence, reason)
        return state, [decision]
    state, decision = _stop(cfg, state, step, "overfitting", evidence, reason + "; learning-rate cuts spent")
    return state, [decision]


def check_improvement(cfg: ControllerConfig, state: ControllerState, step: int, metrics: Mapping[str, float],
                      earlier: list[Decision]) -> Rule:
    """No improvement: the objective has not improved by ``min_delta`` for ``patience`` validations -> stop.

    ``best_objective`` is kept as a loss (the value, negated for a maximised objective).
    """
    if cfg.objective_metric not in metrics:
        return state, []
    value = float(metrics[cfg.objective_metric])
    sign = -1.0 if cfg.objective_maximized else 1.0
    if sign * value < state.best_objective - cfg.min_delta:
        return replace(state, best_objective=sign * value, best_step=step, since_improvement=0), []
    state = replace(state, since_improvement=state.since_improvement + 1)
    if state.since_improvement < cfg.patience or state.stop_requested:
        return state, []
    best = sign * state.best_objective
    evidence = {cfg.objective_metric: value, "best": best,
                "best_step": float(state.best_step if state.best_step is not None else -1),
                "validations_without_improvement": float(state.since_improvement)}
    reason = (f"{cfg.objective_metric} not better than {best:.4g} (step {state.best_step}) "
              f"by more than {cfg.min_delta} for {state.since_improvement} validations")
    state, decision = _stop(cfg, state, step, "no_improvement", evidence, reason)
    return state, [decision]


# ----------------------------------------------------------------------------- actions


def breakdown(cfg: ControllerConfig, state: ControllerState, step: int, detection: str,
              evidence: dict[str, float], stop_without_rollback: bool) -> Rule:
    """Non-finite or exploding loss: roll back (when possible) and lower the LR; stop if a NaN cannot be undone.

    Weights that produce NaN on validation do not recover by training on, hence the stop
    when there is nothing to roll back to; an explosion alone keeps training.
    """
    what = ", ".join(f"{k} {v:.4g}" for k, v in evidence.items() if not k.endswith("_reference"))
    reason = f"{detection.replace('_', ' ')}: {what}"
    decisions: list[Decision] = []
    rolled_back = False
    if state.last_good_step is None:
        decisions.append(Decision(step, detection, "none_no_checkpoint", evidence, {},
                                  reason + "; no good validation to roll back to"))
    elif state.rollbacks >= cfg.max_rollbacks:
        decisions.append(_limit(step, detection, evidence, reason, "max_rollbacks", state.rollbacks))
    else:
        state = replace(state, rollbacks=state.rollbacks + 1)
        rolled_back = True
        decisions.append(Decision(step, detection, "rollback", evidence, {"to_step": state.last_good_step},
                                  reason + f"; back to step {state.last_good_step}"))
    state, decision = _cut_lr(cfg, state, step, detection, evidence, reason)
    decisions.append(decision)
    if stop_without_rollback and not rolled_back:
        state, decision = _stop(cfg, state, step, detection, evidence, reason + "; cannot roll back")
        decisions.append(decision)
    return state, decisions


def _start_cooldown(cfg: ControllerConfig, state: ControllerState, detection: str) -> ControllerState:
    if cfg.cooldown <= 0:
        return state
    # +1 because the next observe() decrements before judging.
    return replace(state, cooldowns={**state.cooldowns, detection: cfg.cooldown + 1})


def _boost(cfg: ControllerConfig, state: ControllerState, step: int, detection: str, evidence: dict[str, float],
           reason: str, which: str) -> tuple[ControllerState, Decision]:
    """Raise the "ga" or "gate" multiplier by its factor (or say why not)."""
    action = "raise_guided_attention" if which == "ga" else "raise_gate_weight"
    frozen = _left_to_tuner(cfg, step, detection, evidence, reason, action)
    if frozen is not None:
        return state, frozen
    if state.cooldowns.get(detection):
        return state, Decision(step, detection, "none_cooldown", evidence,
                               {"validations_left": state.cooldowns[detection]}, reason)
    if which == "ga":
        used, limit, factor, cap, current = (state.ga_boosts, cfg.max_ga_boosts, cfg.ga_boost_factor,
                                             cfg.max_ga_boost, state.ga_boost)
        limit_name, key = "max_ga_boosts", "ga_boost"
    else:
        used, limit, factor, cap, current = (state.gate_boosts, cfg.max_gate_boosts, cfg.gate_boost_factor,
                                             cfg.max_gate_boost, state.gate_boost)
        limit_name, key = "max_gate_boosts", "gate_boost"
    if used >= limit or current >= cap:
        name = limit_name if used >= limit else limit_name.replace("boosts", "boost")
        return state, _limit(step, detection, evidence, reason, name, used)
    new = min(current * factor, cap)
    if which == "ga":
        state = replace(state, ga_boost=new, ga_boosts=used + 1)
    else:
        state = replace(state, gate_boost=new, gate_boosts=used + 1)
    state = _start_cooldown(cfg, state, detection)
    return state, Decision(step, detection, action, evidence, {key: new, "factor": new / current},
                           reason + f"; {key} {current:g} -> {new:g}")


def _cut_lr(cfg: ControllerConfig, state: ControllerState, step: int, detection: str, evidence: dict[str, float],
            reason: str) -> tuple[ControllerState, Decision]:
    frozen = _left_to_tuner(cfg, step, detection, evidence, reason, "lower_learning_rate")
    if frozen is not None:
        return state, frozen
    if state.lr_cuts >= cfg.max_lr_cuts:
        return state, _limit(step, detection, evidence, reason, "max_lr_cuts", state.lr_cuts)
    old = state.lr_scale
    state = replace(state, lr_scale=old * cfg.lr_cut_factor, lr_cuts=state.lr_cuts + 1)
    return state, Decision(step, detection, "lower_learning_rate", evidence,
                           {"lr_scale": state.lr_scale, "factor": cfg.lr_cut_factor},
                           reason + f"; lr_scale {old:g} -> {state.lr_scale:g}")


def _left_to_tuner(cfg: ControllerConfig, step: int, detection: str, evidence: dict[str, float], reason: str,
                   action: str) -> Decision | None:
    """Return the ``none_left_to_tuner`` decision when ``action`` would turn a frozen config key, else None."""
    key = INTERVENTIONS[action].config_key
    if key not in cfg.frozen_keys:
        return None
    return Decision(step, detection, "none_left_to_tuner", evidence, {"key": key, "action": action},
                    reason + f"; {key} is left to the tuner (the study samples it): not changed")


def _stop(cfg: ControllerConfig, state: ControllerState, step: int, detection: str, evidence: dict[str, float],
          reason: str) -> tuple[ControllerState, Decision]:
    if not cfg.early_stop and detection in ("no_improvement", "overfitting"):
        return state, _limit(step, detection, evidence, reason + " (early stop disabled)", "early_stop", 0)
    state = replace(state, stop_requested=True, stop_detection=detection, stop_reason=reason)
    return state, Decision(step, detection, "stop", evidence, {}, reason)


def _limit(step: int, detection: str, evidence: dict[str, float], reason: str, limit: str, used: int) -> Decision:
    return Decision(step, detection, "none_limit_reached", evidence, {"limit": limit, "used": used},
                    reason + f"; limit {limit} reached")


class QualityController:
    """The rules above with their settings and current state, for the training loop.

    Read ``multipliers()``, ``stop_requested`` and ``last_good_step`` (any ``ControllerState``
    field reads through) after each ``observe``.
    """

    def __init__(self, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.state = ControllerState()

    def __getattr__(self, name: str) -> Any:
        if name != "state" and name in _STATE_FIELDS:
            return getattr(self.state, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def multipliers(self) -> dict[str, float]:
        """Return {"lr_scale", "ga_boost", "gate_boost"}: the current cumulative multipliers (unitless)."""
        return {"lr_scale": self.state.lr_scale, "ga_boost": self.state.ga_boost,
                "gate_boost": self.state.gate_boost}

    def observe(self, step: int, metrics: Mapping[str, float]) -> list[Decision]:
        """Judge one validation (see ``observe`` the function), keep the new state and return the decisions."""
        self.state, decisions = observe(self.config, self.state, step, metrics)
        return decisions

    def state_dict(self) -> dict[str, Any]:
        """Return the state and the settings it was judged with, as plain values for a checkpoint."""
        return {"config": asdict(self.config), **self.state.to_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the state from ``state_dict()``; the settings stay this object's own."""
        self.state = ControllerState.from_dict(state)


_STATE_FIELDS = frozenset(f.name for f in fields(ControllerState))
