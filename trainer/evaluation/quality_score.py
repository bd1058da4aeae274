"""The composite quality score of one validation: how aligned, focused and well-stopped a model is, in [0, 1].

Reported at every validation as ``quality_score`` (teacher-forced figures) and
``fr_quality_score`` (free-running ones); a study may optimise it.
"""

from __future__ import annotations

from collections.abc import Mapping

from trainer.evaluation import metric_registry

__all__ = ["QUALITY_COMPONENTS", "STOP_COMPONENTS", "quality_score"]

# Component weights of the quality score, by metric name without its tf_/fr_ prefix. The
# alignment and gate components are read with the score's prefix; the two stop components
# are free-running whatever the prefix. How a value maps to [0, 1] is the metric's own
# declaration (trainer.evaluation.metric_registry: ``best``/``worst``).
QUALITY_COMPONENTS: dict[str, float] = {
    "diagonality": 0.30,
    "focus": 0.15,
    "monotonicity": 0.10,
    "coverage": 0.15,
    "gate_balanced_accuracy": 0.30,
}
STOP_COMPONENTS: dict[str, float] = {"fr_stop_error": 0.15, "fr_hit_max_rate": 0.10}


def quality_score(metrics: Mapping[str, float], prefix: str = "tf_") -> float:
    """Return the composite quality of one validation, a float in [0, 1] (1 = perfect).

    score = Σ_i w_i·g_i / Σ_i w_i over the components i present in ``metrics``, g_i the
    goodness of its value (``metric_registry.goodness``: linear from the metric's worst
    value, 0, to its best, 1, clipped):

    ====================================  ===========================  =====
    component                             goodness                     w_i
    ====================================  ===========================  =====
    prefix + diagonality                  value                        0.30
    prefix + focus                        value                        0.15
    prefix + monotonicity                 value                        0.10
    prefix + coverage                     value                        0.15
    prefix + gate_balanced_accuracy       2·value − 1 (chance: 0)      0.30
    fr_stop_error                         1 − min(value, 1)            0.15
    fr_hit_max_rate                       1 − value                    0.10
    ====================================  ===========================  =====

    A weighted arithmetic mean, not a geometric one: an untrained model scores low on
    every component at once, and a geometric mean would pin it at 0 from the first zero
    component and stop ranking young trials.

    Missing metrics: a component whose key is absent (or not a registered metric, like a
    free-running gate accuracy) is left out and the weights of the present ones
    renormalised; a non-finite value counts 0. Raises ValueError when no component is present.
    """
    weights = {f"{prefix}{name}": w for name, w in QUALITY_COMPONENTS.items()}
    weights.update(STOP_COMPONENTS)
    total = weight_sum = 0.0
    for name, weight in weights.items():
        if name not in metrics or not metric_registry.is_known(name):
            continue
        total += weight * metric_registry.goodness(name, float(metrics[name]))
        weight_sum += weight
    if weight_sum == 0.0:
        raise ValueError(f"quality_score: none of the quality metrics (prefix {prefix!r}) is present")
    return total / weight_sum
