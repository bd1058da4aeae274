"""One validation of a training run: measure, record, let the quality controller act, keep the best checkpoint.

``on_validation`` is what the loop runs every ``val_interval`` steps. What a validation
measures is ``trainer.evaluation.validate``'s; this module decides what the run does with it:
a ``val`` record in metrics.jsonl, the pictures and sound of one utterance, the controller's
decisions carried out (multipliers, a rollback to ``good.pt``), and ``best.pt`` when the
chosen metric improved.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING

import torch

from trainer.audio.mel import griffin_lim, write_wav
from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import MINIMIZE
from trainer.evaluation.plots import plot_alignment, plot_gate, plot_mels
from trainer.evaluation.quality_score import quality_score
from trainer.evaluation.validate import validate
from trainer.model.checkpoint import load_checkpoint
from trainer.training.state import BY_CONTROLLER, StopReason

if TYPE_CHECKING:
    from pathlib import Path

    from trainer.data.batches import Batch
    from trainer.evaluation.validate import Sample
    from trainer.model.contract import ModelOutputs
    from trainer.synthesis.vocoder import Vocoder
    from trainer.training.session import Session
    from trainer.training.state import StepHParams

__all__ = ["apply_quality_control", "is_better", "on_validation", "val_line", "write_validation_plots"]


def on_validation(session: Session, hp: StepHParams,
                  train_loss: float) -> tuple[dict[str, float], StopReason | None]:
    """Validate, record, let the controller act, keep the best checkpoint; return (metrics, the controller's stop).

    ``hp`` is the step just taken's (its loss weights make ``val_total`` comparable with
    ``train_loss``, the mean training loss since the last validation). The controller's
    multipliers take effect from the next step; the run's callback is not called here (the
    caller hands it the metrics).
    """
    config, state, folder = session.config, session.state, session.folder

    def loss(out: ModelOutputs, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return session.criterion(out, batch, hp.loss_weights)

    metrics, sample = validate(session.model, loss, session.val_set, config, session.device,
                               state.frames_per_char, state.gate_progress(config.max_steps),
                               session.band_range, session.asr)
    metrics.update(train_loss=train_loss, lr=hp.lr, tf_ratio=hp.tf_ratio, ga_weight=hp.loss_weights.ga_weight,
                   quality_score=quality_score(metrics, "tf_"))
    if "fr_diagonality" in metrics:
        metrics["fr_quality_score"] = quality_score(metrics, "fr_")
    folder.append_metrics({"kind": "val", "step": state.step, **metrics})
    if session.asr is not None and session.asr.off_reason is not None:
        folder.append_metrics({"kind": "event", "step": state.step, "event": "asr_off",
                               "reason": session.asr.off_reason})
        print(session.asr.off_reason, file=sys.stderr)
        session.asr = None  # said once; no more scoring in this run
    if config.plots and sample is not None:
        write_validation_plots(folder.plots, state.step, sample, config.stop_threshold, session.vocode)
    stop = None
    if session.controller is not None:
        stop = apply_quality_control(session, metrics)
    chosen = config.selection_metric
    if is_better(chosen, metrics.get(chosen, math.nan), state.best_metric):
        state.best_metric = metrics[chosen]
        session.save(folder.best, metrics)
    return metrics, stop


def is_better(name: str, value: float, best: float) -> bool:
    """True when ``value`` of registered metric ``name`` beats ``best`` (NaN never does; ``best`` NaN: any finite)."""
    if not math.isfinite(value):
        return False
    if math.isnan(best):
        return True
    return value < best if metric_registry.get(name).direction == MINIMIZE else value > best


def apply_quality_control(session: Session, metrics: dict[str, float]) -> StopReason | None:
    """Let the controller judge one validation, carry out its decisions, and return why to stop (None: go on).

    Every decision goes to metrics.jsonl as a ``quality`` record (step, detection, evidence,
    action). A rollback restores the model and optimiser of ``good.pt`` only: the data
    position, RNG and the controller's own counts move on, so the same batches are not
    replayed and the limits are not undone.
    """
    controller, state, folder = session.controller, session.state, session.folder
    assert controller is not None
    decisions = controller.observe(state.step, metrics)
    for decision in decisions:
        folder.append_metrics(decision.to_record())
    multipliers = controller.multipliers()
    state.lr_scale, state.ga_boost, state.gate_boost = (multipliers["lr_scale"], multipliers["ga_boost"],
                                                        multipliers["gate_boost"])
    if any(d.action == "rollback" for d in decisions) and folder.good.is_file():
        payload = load_checkpoint(folder.good, map_location=session.device)
        session.model.load_state_dict(payload["model"])
        session.optimizer.load_state_dict(payload["optimizer"])
        folder.append_metrics({"kind": "event", "step": state.step, "event": "rollback",
                               "to_step": payload["position"]["step"]})
    if controller.last_good_step == state.step:
        session.save(folder.good, metrics)
    if not controller.stop_requested:
        return None
    if not controller.stop_detection:  # a checkpoint from before stops were explained
        return StopReason(BY_CONTROLLER, "the controller had asked to stop before this run resumed")
    detection = controller.stop_detection
    return StopReason(BY_CONTROLLER, f"{detection}: {controller.stop_reason}", detection)


def write_validation_plots(folder: Path, step: int, sample: Sample, gate_threshold: float,
                           vocode: Vocoder = griffin_lim) -> None:
    """Write the validation pictures and sound of one utterance into ``folder`` as ``step_NNNNNN_<what>``.

    PNGs of the attention (teacher-forced and free-running), the target and free-running
    mels and the stop gate, and ``step_NNNNNN_sample.wav``: the free-running synthesis
    through ``vocode`` (Griffin-Lim unless the config names a vocoder; 32 iterations, about
    40 ms for two seconds of speech), so a run can be listened to as it trains, not only once
    it ends.
    """
    stem = folder / f"step_{step:06d}"
    write_wav(f"{stem}_sample.wav", vocode(sample.fr_mel))
    plot_alignment(sample.tf_attention, f"{stem}_alignment_tf.png", f"teacher-forced attention, step {step}")
    plot_alignment(sample.fr_attention, f"{stem}_alignment_fr.png", f"free-running attention, step {step}")
    plot_mels(sample.target_mel, sample.fr_mel, f"{stem}_mel.png", f"target vs free-running mel, step {step}")
    plot_gate(sample.tf_gate, sample.gate_target, gate_threshold, f"{stem}_gate.png",
              f"teacher-forced stop gate, step {step}")


def val_line(step: int, metrics: dict[str, float]) -> str:
    """Return the progress bar's one line about a validation: the objective and alignment figures present."""
    keys = ("val_mel_postnet_l1", "fr_mcd", "tf_diagonality", "tf_focus", "tf_gate_balanced_accuracy")
    return f"step {step}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics)
