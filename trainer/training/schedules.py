"""Training schedules as pure functions of the step: no optimiser or module state here.

The training loop asks each function for this step's value, so a resumed run gets
exactly the same schedule from its saved step count, and every curve can be tested
point by point. "step" means optimiser step (0-based) unless a docstring says otherwise.
When inference stops (the adaptive stop threshold) is the model's, in ``trainer.model.stopping``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "lr_at",
    "teacher_forcing_ratio",
    "guided_attention_weight",
    "guided_attention_sigma",
    "Phase",
    "PHASES",
    "phase_boundaries",
    "phase_at",
]

# ------------------------------------------------------------------ learning rate


def lr_at(step: int, base_lr: float, warmup_steps: int = 2000, restart_period: int = 10000,
          restart_mult: float = 2.0, min_lr: float = 1e-6) -> float:
    """Return the learning rate at ``step``: linear warm-up, then cosine annealing with warm restarts (SGDR).

    * Warm-up, steps 0..warmup_steps−1: base_lr·(step + 1)/warmup_steps, from about 0
      (base_lr/warmup_steps at step 0, never exactly 0 so no step is wasted) up to base_lr.
    * Then, with s = step − warmup_steps, cycles of restart_period, restart_period·mult,
      restart_period·mult², ... steps (Loshchilov & Hutter 2017, as torch's
      CosineAnnealingWarmRestarts, but mult may be any float ≥ 1). Within a cycle of
      length L at position u: min_lr + (base_lr − min_lr)·(1 + cos(π·u/L))/2, so each
      cycle starts at base_lr (at step warmup_steps and every restart) and decays towards
      min_lr. If base_lr < min_lr the floor is base_lr: the schedule never raises the rate.
    """
    if restart_period <= 0 or restart_mult < 1.0:
        raise ValueError("restart_period must be > 0 and restart_mult >= 1")
    step = max(int(step), 0)
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    floor = min(min_lr, base_lr)
    position, length = float(step - warmup_steps), float(restart_period)
    if restart_mult == 1.0:
        position = position % restart_period
    else:
        # Cycle lengths grow geometrically, so this loop runs O(log step) times.
        while position >= length:
            position -= length
            length *= restart_mult
    return floor + (base_lr - floor) * (1.0 + math.cos(math.pi * position / length)) / 2.0


# ------------------------------------------------------------- teacher forcing


def teacher_forcing_ratio(step: int, hold_steps: int = 1000, decay_steps: int = 10000,
                          floor: float = 0.7) -> float:
    """Return the probability of feeding the ground-truth frame to the decoder at ``step``.

    1.0 for steps < hold_steps (the attention must align first), then linear down to
    ``floor`` over ``decay_steps`` steps, then ``floor``: with probability 1 − ratio the
    decoder is fed its own previous prediction (scheduled sampling).
    """
    if step < hold_steps:
        return 1.0
    if decay_steps <= 0:
        return floor
    progress = min((step - hold_steps) / decay_steps, 1.0)
    return 1.0 - (1.0 - floor) * progress


# ------------------------------------------------------------ guided attention


def guided_attention_weight(step: int, initial: float = 2.5, decay: float = 0.9999, floor: float = 0.0) -> float:
    """Return the guided-attention loss weight at ``step``: initial·decay^step, never below ``floor``.

    With the defaults the weight halves about every 6,900 steps; a positive
    floor keeps a small pull towards the diagonal in long runs.
    """
    return max(initial * decay ** max(step, 0), floor)


def guided_attention_sigma(step: int, start: float = 0.4, end: float = 0.2, anneal_steps: int = 10000) -> float:
    """Return the guided-attention width σ at ``step``: linear from ``start`` to ``end`` over ``anneal_steps``.

    After ``anneal_steps`` it stays at ``end``.

    A wide band first lets a fresh attention find the diagonal at all; the narrower one
    later sharpens it (0.4 → 0.2 by default).
    """
    if anneal_steps <= 0:
        return end
    progress = min(max(step, 0) / anneal_steps, 1.0)
    return start + (end - start) * progress


# ----------------------------------------------------------------------- phases


@dataclass(frozen=True)
class Phase:
    """One training phase: steps [start, end) of the budget, its GA weight and LR multiplier."""

    index: int
    name: str
    start: int
    end: int
    ga_weight: float
    lr_mult: float


# (name, share of the budget as 500:1500:1000:500, GA weight, LR multiplier): a strong pull to the
# diagonal while the attention forms, then a weaker one and a lower rate while quality is polished.
PHASES: tuple[tuple[str, int, float, float], ...] = (
    ("pre_alignment", 500, 10.0, 1.0),
    ("alignment_learning", 1500, 3.0, 0.8),
    ("quality_optimization", 1000, 1.0, 0.5),
    ("fine_tuning", 500, 0.5, 0.3),
)


def phase_boundaries(total_steps: int) -> tuple[int, ...]:
    """Return the 5 boundaries (0, b1, b2, b3, total_steps) of the four phases, in steps.

    b_i = ⌊total_steps · (cumulative share) / 3500⌋ in integer arithmetic, so the
    proportions scale to any budget without float rounding surprises (3500 → 500, 2000,
    3000; 7 → 1, 4, 6). On tiny budgets a phase may be empty. Works the same for a
    budget in epochs.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    whole = sum(share for _, share, _, _ in PHASES)
    bounds, cumulative = [0], 0
    for _, share, _, _ in PHASES:
        cumulative += share
        bounds.append(total_steps * cumulative // whole)
    return tuple(bounds)


def phase_at(step: int, total_steps: int) -> Phase:
    """Return the Phase that ``step`` falls in for a budget of ``total_steps`` (past the budget: the last one)."""
    bounds = phase_boundaries(total_steps)
    for index, (name, _, ga_weight, lr_mult) in enumerate(PHASES):
        if step < bounds[index + 1] or index == len(PHASES) - 1:
            return Phase(index, name, bounds[index], bounds[index + 1], ga_weight, lr_mult)
    raise AssertionError("unreachable")
