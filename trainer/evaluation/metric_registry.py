"""Every metric the trainer reports, declared once: name, direction, range, meaning.

A validation record (``metrics.jsonl``, the training callback) holds these names. Whatever
reads a metric by name reads its declaration here: the search-space validator (which names
an objective or a gate may use, and an objective's default direction), the quality gates
and the pruner's direction, the quality score (its components and how each maps to
[0, 1]), the tuner's live view and status table (the metrics with a ``label``), and the
MLflow study run (the definitions, logged as ``metric_definitions.json``).

Adding a metric the pruner can gate on and the live view shows: compute it in validation
(``trainer.evaluation.validate``) and ``register`` it here; nothing else needs to change.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from trainer.errors import UserError

__all__ = [
    "MAXIMIZE",
    "MINIMIZE",
    "Metric",
    "QUALITY_SCORE",
    "TEACHER_FORCED_LOSS_PREFIX",
    "UnknownMetricError",
    "all_metrics",
    "get",
    "goodness",
    "is_known",
    "lookup",
    "register",
    "shown",
]

MINIMIZE: Final = "minimize"
MAXIMIZE: Final = "maximize"
TEACHER_FORCED_LOSS_PREFIX = "val_"  # the validation's teacher-forced losses: val_total, val_mel_postnet_l1 ...
Direction = Literal["minimize", "maximize"]

QUALITY_SCORE = "quality_score"  # the composite score's one name (trainer.evaluation.quality_score)


class UnknownMetricError(UserError):
    """A metric name that no declaration in the registry matches; the message suggests close names."""


@dataclass(frozen=True)
class Metric:
    """One reported figure.

    ``direction`` is what "better" means (None: not a quality figure, e.g. the learning rate
    at that validation; it cannot be an objective). ``low``/``high`` bound its values (None:
    unbounded). ``best``/``worst`` anchor its goodness in [0, 1] for the quality score
    (``goodness``); only metrics with both can be score components. ``label`` is the short
    column name of the live view and the status table; a metric without one is not shown
    there (it is still logged and can still be an objective or a gate).
    """

    name: str
    direction: Direction | None
    meaning: str
    low: float | None = None
    high: float | None = None
    best: float | None = None
    worst: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"name must be letters, digits and '_', got {self.name!r}")
        if self.direction not in (MINIMIZE, MAXIMIZE, None):
            raise ValueError(f"direction must be {MINIMIZE!r}, {MAXIMIZE!r} or None, got {self.direction!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.name}: low ({self.low}) is above high ({self.high})")
        if (self.best is None) != (self.worst is None) or (self.best is not None and self.best == self.worst):
            raise ValueError(f"{self.name}: give both best and worst, and make them differ")

    def describe(self) -> str:
        """Return e.g. ``tf_diagonality (maximize, 0..1): share of attention mass ...``."""
        bounds = "" if self.low is None and self.high is None else (
            f", {_bound(self.low, '-inf')}..{_bound(self.high, 'inf')}")
        return f"{self.name} ({self.direction or 'informational'}{bounds}): {self.meaning}"


def _bound(value: float | None, missing: str) -> str:
    return missing if value is None else f"{value:g}"


_REGISTRY: dict[str, Metric] = {}


def register(metric: Metric, replace: bool = False) -> Metric:
    """Declare ``metric``; registering the same name with another definition needs ``replace``."""
    current = _REGISTRY.get(metric.name)
    if current is not None and current != metric and not replace:
        raise ValueError(f"metric {metric.name!r} is already registered with another definition "
                         "(pass replace=True to change it)")
    _REGISTRY[metric.name] = metric
    return metric


def unregister(name: str) -> None:
    """Remove ``name`` (for tests that register a toy metric)."""
    _REGISTRY.pop(name, None)


def is_known(name: str) -> bool:
    """True when ``name`` is registered."""
    return name in _REGISTRY


def get(name: str) -> Metric:
    """Return the declaration of ``name``; KeyError when there is none (a bug, not bad input)."""
    return _REGISTRY[name]


def lookup(name: object) -> Metric:
    """Return the declaration of a name the user wrote; UnknownMetricError (a UserError) suggests close names."""
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(str(name), list(_REGISTRY), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `tuner metrics` lists them"
    raise UnknownMetricError(f"unknown metric {name!r}{hint}")


def all_metrics() -> list[Metric]:
    """Return every declaration, in registration order."""
    return list(_REGISTRY.values())


def shown() -> list[Metric]:
    """Return the metrics with a ``label`` (the live view's and status table's columns), in registration order."""
    return [m for m in _REGISTRY.values() if m.label]


def goodness(name: str, value: float) -> float:
    """Return how good ``value`` of metric ``name`` is, in [0, 1]: linear from its ``worst`` (0) to its ``best`` (1).

    A non-finite value counts 0 (it comes from a broken model and must not lift a score).
    """
    metric = _REGISTRY[name]
    if metric.best is None or metric.worst is None:
        raise ValueError(f"metric {name!r} has no best/worst anchors and cannot be scored")
    if not math.isfinite(value):
        return 0.0
    return min(max((value - metric.worst) / (metric.best - metric.worst), 0.0), 1.0)


def definitions() -> list[dict[str, Any]]:
    """Return every declaration as a plain dict (for MLflow and ``tuner metrics --format json``)."""
    return [asdict(m) for m in _REGISTRY.values()]


def summary(metrics: Mapping[str, float], names: Iterable[str] | None = None) -> dict[str, float]:
    """Return the finite values of the shown metrics (or of ``names``) in ``metrics``, rounded to 5 digits."""
    chosen = [m.name for m in shown()] if names is None else list(names)
    out = {}
    for name in chosen:
        value = metrics.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = round(float(value), 5)
    return out


# --------------------------------------------------------------------------- the trainer's metrics


# Alignment figures, teacher-forced (tf_) and free-running (fr_); definitions in trainer.evaluation.metrics.
_ALIGNMENT = {
    "diagonality": ("share of attention mass within 0.1 of the diagonal (1: perfectly linear)", "diag"),
    "focus": ("mean over decoder steps of the largest attention weight", "focus"),
    "monotonicity": ("share of steps whose attention peak does not move backward", None),
    "coverage": ("share of text tokens that are some step's attention peak", None),
}
for _prefix, _how in (("tf_", "teacher-forced"), ("fr_", "free-running")):
    for _name, (_meaning, _label) in _ALIGNMENT.items():
        register(Metric(f"{_prefix}{_name}", MAXIMIZE, f"{_how}: {_meaning}", low=0.0, high=1.0, best=1.0, worst=0.0,
                        label=_label if _prefix == "tf_" else None))

register(Metric("tf_gate_balanced_accuracy", MAXIMIZE,
                "teacher-forced stop gate: mean of the stop and continue recall (0.5: chance)",
                low=0.0, high=1.0, best=1.0, worst=0.5, label="gate_ba"))
register(Metric("fr_stop_error", MINIMIZE,
                "free-running |predicted - reference length| / reference length, mean over utterances",
                low=0.0, best=0.0, worst=1.0))
register(Metric("fr_hit_max_rate", MINIMIZE, "share of free-running utterances that never stopped within the limit",
                low=0.0, high=1.0, best=0.0, worst=1.0))
register(Metric("fr_early_stop_rate", MINIMIZE, "share of free-running utterances shorter than 0.8 x the reference",
                low=0.0, high=1.0))
register(Metric("fr_run_on_rate", MINIMIZE,
                "share of free-running utterances longer than 1.2 x the reference, or never stopped",
                low=0.0, high=1.0))

register(Metric("fr_mcd", MINIMIZE,
                "free-running mel cepstral distortion (MCD-DTW, dB) against the recording, mean over utterances",
                low=0.0, label="mcd"))
register(Metric("fr_mcd_sl", MINIMIZE,
                "free-running MCD-DTW (dB) of the silence-trimmed mels times max(length ratio, its inverse), mean over "
                "utterances: smeared, run-on, cut-short and noisy output rank behind aligned speech",
                low=0.0, label="mcd_sl"))
register(Metric("fr_length_ratio", None,
                "free-running predicted / reference length, mean over utterances (1 is right)", low=0.0))
register(Metric("fr_out_of_range", MINIMIZE,
                "share of free-running mel values outside the training corpus's range of their band (0 is sane)",
                low=0.0, high=1.0, best=0.0, worst=1.0))
register(Metric("fr_wer", MINIMIZE,
                "word error rate of an English recogniser on the free-running sentences (asr extra; 0 is perfect)",
                low=0.0, label="wer"))
register(Metric("fr_cer", MINIMIZE, "character error rate of the same transcripts", low=0.0))
register(Metric("fr_wer_seen", MINIMIZE, "share of the free-running sentences' words heard in training that the "
                "recogniser missed", low=0.0, high=1.0))
register(Metric("fr_wer_unseen", MINIMIZE, "share of their words never heard in training that the recogniser missed "
                "(can the model say a new word?)", low=0.0, high=1.0))
register(Metric("fr_wer_ceiling", None,
                "the word error rate of the recordings' own mels vocoded alike: the best fr_wer can reach", low=0.0))
register(Metric("fr_cer_ceiling", None, "the character error rate of the same", low=0.0))
register(Metric("val_mel_postnet_l1", MINIMIZE,
                "teacher-forced mean |postnet mel - target| over valid frames (log-mel units), whatever the loss",
                low=0.0, label="mel_l1"))
_TERMS = {
    "total": "the weighted training loss", "mel": "mel distance of the decoder output",
    "mel_postnet": "mel distance of the postnet output", "gate": "stop-gate binary cross-entropy",
    "guided_attention": "guided-attention penalty per decoder step", "monotonic": "backward attention movement",
    "structural": "1 - SSIM of postnet and target log-mels", "gram_style": "Gram-matrix distance of mel bands",
}
_SUBTERMS = {"freq_l1": "frequency-weighted L1", "multires": "multi-resolution modulation distance",
             "temporal": "frame-difference L1"}
for _term, _meaning in _TERMS.items():
    register(Metric(f"{TEACHER_FORCED_LOSS_PREFIX}{_term}", MINIMIZE, f"validation, teacher-forced: {_meaning}",
                    low=0.0))
for _output in ("mel", "mel_postnet"):
    for _sub, _meaning in _SUBTERMS.items():
        register(Metric(f"{TEACHER_FORCED_LOSS_PREFIX}{_output}_{_sub}", MINIMIZE,
                        f"validation: {_meaning} of the {_output} (spectral loss)",
                        low=0.0))
register(Metric("train_loss", MINIMIZE, "mean training loss since the previous validation", low=0.0))

register(Metric(QUALITY_SCORE, MAXIMIZE,
                "composite of teacher-forced alignment, gate and free-running stop figures (trainer.training.quality)",
                low=0.0, high=1.0, label="quality"))
register(Metric("fr_quality_score", MAXIMIZE, "the quality score with the free-running alignment figures",
                low=0.0, high=1.0))

register(Metric("lr", None, "learning rate at this validation", low=0.0))
register(Metric("tf_ratio", None, "teacher-forcing ratio at this validation", low=0.0, high=1.0))
register(Metric("ga_weight", None, "guided-attention weight at this validation", low=0.0))
