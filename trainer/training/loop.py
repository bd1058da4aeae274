"""The training loop: ``train()``, and ``train_step``, the one optimiser step it runs.

``train()`` reads in labelled blocks: build the run's session (``trainer.training.session``:
data, model, optimiser, state, resume or warm start, the batch source), then one optimiser
step per iteration: this step's schedules (the pure ``step_hparams``), the step
(``train_step``), its log record, a validation every ``val_interval`` steps
(``trainer.training.validation``) and the checkpoints, until ``max_steps`` or a stop. No
module attribute is changed while training: the loss gets this step's weights as an argument.

Reporting has one door: after every validation the metrics go to ``metrics.jsonl`` in the
run folder and to ``callback(step, metrics)``; a True return asks training to stop. The
tuner plugs in there and nowhere else.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import torch
from tqdm import tqdm

from trainer.errors import NonFiniteLossError, TrainingInterrupted
from trainer.evaluation.validate import autocast
from trainer.model.contract import count_parameters
from trainer.training.final import final_evaluation
from trainer.training.session import build_session
from trainer.training.state import BY_CALLBACK, StopReason, step_hparams
from trainer.training.validation import on_validation, val_line

if TYPE_CHECKING:
    import threading

    from trainer.config import TrainConfig
    from trainer.data.batches import Batch
    from trainer.evaluation.final import Evaluation
    from trainer.model.contract import AcousticModel, ModelOutputs
    from trainer.training.losses import LossWeights, TacotronLoss
    from trainer.training.session import Session
    from trainer.training.state import StepHParams

__all__ = ["Callback", "StepOutcome", "TrainResult", "compute_loss", "train", "train_step"]

Callback = Callable[[int, dict[str, float]], bool]


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind; ``best_metric`` is the best value of ``config.selection_metric``.

    ``stop`` says who ended the run early and why: the quality controller (its stop decision's
    detection and reason) or the callback; None for a run that reached ``max_steps``. ``final``
    is the selected checkpoint's score on every held-out sentence (``final_evaluation``); None
    when the callback stopped the run (a pruned trial needs none) or the config turns it off.
    """

    run_dir: Path
    step: int
    best_metric: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0
    stop: StopReason | None = None
    final: Evaluation | None = None

    @property
    def stopped_early(self) -> bool:
        """True when the controller or the callback ended the run before ``max_steps``."""
        return self.stop is not None


# --------------------------------------------------------------------------- one step


def compute_loss(model: AcousticModel, criterion: TacotronLoss, batch: Batch, teacher_forcing: float,
                 weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor], ModelOutputs]:
    """Run the model on ``batch`` and return (total loss, detached terms, model outputs)."""
    out = model(batch, teacher_forcing)
    total, terms = criterion(out, batch, weights)
    return total, terms, out


@dataclass
class StepOutcome:
    """What ``train_step`` did: ``finite`` False means the update was skipped."""

    finite: bool
    terms: dict[str, float]  # unweighted loss terms, averaged over the accumulated batches
    grad_norm: float
    frames: int  # mel frames trained on
    data_seconds: float  # time spent waiting for batches


def train_step(session: Session, next_batch: Callable[[], Batch], hp: StepHParams,
               mark: Callable[[str], None] | None = None) -> StepOutcome:
    """Run one optimiser step over ``grad_accum_steps`` batches: accumulate, guard, clip, update.

    A non-finite loss stops the accumulation at once (the remaining batches are not
    drawn); a non-finite loss or gradient norm skips the update, leaving the weights as
    they were. ``mark`` (a benchmark's stopwatch) is told when each phase of the step ends:
    "forward", "loss", "backward" (once per accumulated batch) and "update".
    """
    mark = mark or _no_mark
    config, optimizer, scaler = session.config, session.optimizer, session.scaler
    for group in optimizer.param_groups:
        group["lr"] = hp.lr
    optimizer.zero_grad(set_to_none=True)
    accum = config.grad_accum_steps
    terms_sum: dict[str, float] = {}
    finite, frames, data_seconds = True, 0, 0.0
    for _ in range(accum):
        fetch_started = time.perf_counter()
        batch = next_batch()
        data_seconds += time.perf_counter() - fetch_started
        frames += int(batch.mel_lens.sum())
        with autocast(session.device, config):
            out = session.model(batch, hp.tf_ratio)
            mark("forward")
            loss, terms = session.criterion(out, batch, hp.loss_weights)
        mark("loss")
        if not torch.isfinite(loss):
            finite = False
            break
        scaler.scale(loss / accum).backward()
        mark("backward")
        for name, value in terms.items():
            terms_sum[name] = terms_sum.get(name, 0.0) + float(value) / accum
    grad_norm = math.nan
    unscaled = False
    if finite:
        scaler.unscale_(optimizer)
        unscaled = True
        grad_norm = float(torch.nn.utils.clip_grad_norm_(session.model.parameters(), config.grad_clip_norm))
        finite = math.isfinite(grad_norm)
    if finite:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.zero_grad(set_to_none=True)
        if unscaled and scaler.is_enabled():
            scaler.update()  # closes this step's unscale_() (and lowers the scale), or the next one would raise
    mark("update")
    return StepOutcome(finite, terms_sum, grad_norm, frames, data_seconds)


def _no_mark(phase: str) -> None:
    """The stopwatch of a step nobody times."""


# --------------------------------------------------------------------------- the loop's blocks


@dataclass
class _Run:
    """What the loop keeps between steps besides the session's state; none of it is checkpointed."""

    progress: tqdm
    step_started: float  # time.perf_counter() when the step now running began
    nonfinite_in_row: int = 0
    skipped: int = 0
    phase: str = ""
    window_losses: list[float] = field(default_factory=list)  # training losses since the last validation
    last_metrics: dict[str, float] = field(default_factory=dict)
    stop: StopReason | None = None  # set when the controller or the callback asks to stop


def _start(session: Session, show_progress: bool) -> _Run:
    """Write the ``start`` record (and why fr_wer is off), open the progress bar, set the model to training."""
    config, state, folder = session.config, session.state, session.folder
    folder.append_metrics({"kind": "start", "step": state.step, "parameters": count_parameters(session.model),
                           "device": str(session.device), "train_utterances": len(session.train_set),
                           "val_utterances": len(session.val_set), "learning_rate": state.base_lr,
                           "frames_per_char": session.train_set.frames_per_character()})
    progress = tqdm(total=config.max_steps, initial=state.step, desc="train", unit="step",
                    disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
    if session.asr_off is not None:
        folder.append_metrics({"kind": "event", "step": state.step, "event": "asr_off", "reason": session.asr_off})
        if show_progress:
            progress.write(session.asr_off, file=sys.stderr)
    session.model.train()
    return _Run(progress, step_started=time.perf_counter())


def _note_phase(session: Session, hp: StepHParams, run: _Run) -> None:
    """Write a ``phase`` event when this step begins a new training phase (with ``phases`` on)."""
    if hp.phase is not None and hp.phase.name != run.phase:
        session.folder.append_metrics({"kind": "event", "step": session.state.step, "event": "phase",
                                       "phase": hp.phase.name, "ga_weight": hp.phase.ga_weight,
                                       "lr_mult": hp.phase.lr_mult})
        run.phase = hp.phase.name


def _skip_nonfinite(session: Session, run: _Run) -> None:
    """Count a skipped step; ``max_nonfinite_steps`` in a row save ``nonfinite.pt`` and raise NonFiniteLossError."""
    config, state, folder = session.config, session.state, session.folder
    run.nonfinite_in_row += 1
    run.skipped += 1
    folder.append_metrics({"kind": "event", "step": state.step, "event": "nonfinite_skip",
                           "in_a_row": run.nonfinite_in_row})
    if run.nonfinite_in_row >= config.max_nonfinite_steps:
        session.save(folder.checkpoints / "nonfinite.pt")
        raise NonFiniteLossError(
            f"loss or gradient non-finite for {run.nonfinite_in_row} steps in a row at step {state.step} "
            f"(max_nonfinite_steps={config.max_nonfinite_steps}); last good state in {folder.last}")


def _log_step(session: Session, hp: StepHParams, outcome: StepOutcome, run: _Run) -> None:
    """Record a finished step: a ``train`` record every ``log_interval`` steps (and the first), the progress bar."""
    state = session.state
    now = time.perf_counter()
    seconds, run.step_started = now - run.step_started, now
    if state.step % session.config.log_interval == 0 or state.step == 1:
        session.folder.append_metrics({
            "kind": "train", "step": state.step, "lr": hp.lr, "tf_ratio": hp.tf_ratio,
            "ga_weight": hp.loss_weights.ga_weight, "ga_sigma": hp.loss_weights.ga_sigma,
            "grad_norm": outcome.grad_norm, "sec_per_step": seconds, "data_sec": outcome.data_seconds,
            "frames": outcome.frames, **{f"train_{k}": v for k, v in outcome.terms.items()}})
    run.progress.update(1)
    run.progress.set_postfix(loss=f"{outcome.terms.get('total', math.nan):.3f}", s_step=f"{seconds:.2f}",
                             refresh=False)
    run.window_losses.append(outcome.terms.get("total", math.nan))


def _validate(session: Session, hp: StepHParams, run: _Run, callback: Callback | None, show_progress: bool) -> None:
    """Validate, hand the metrics to ``callback`` (called even when the controller stops) and note a stop.

    When both ask to stop at once, the controller's reason is the one kept: it decided first.
    """
    step = session.state.step
    run.last_metrics, controller_stop = on_validation(session, hp, sum(run.window_losses) / len(run.window_losses))
    run.window_losses.clear()
    if show_progress:
        run.progress.write(val_line(step, run.last_metrics))
    asked = callback is not None and bool(callback(step, dict(run.last_metrics)))
    if controller_stop is not None:
        run.stop = controller_stop
    elif asked:
        run.stop = StopReason(BY_CALLBACK, f"the callback asked to stop after the validation at step {step}")


def _save_checkpoints(session: Session, run: _Run, at_end: bool, interrupted: bool) -> None:
    """Save last.pt every ``checkpoint_interval`` steps, at the end, on a stop and on an interruption.

    With ``keep_step_checkpoints`` each interval's checkpoint is also kept as ``step_NNNNNN.pt``.
    """
    config, state, folder = session.config, session.state, session.folder
    if state.step % config.checkpoint_interval == 0 or at_end or run.stop is not None or interrupted:
        session.save(folder.last, run.last_metrics)
        if config.keep_step_checkpoints and state.step % config.checkpoint_interval == 0:
            session.save(folder.checkpoints / f"step_{state.step:06d}.pt", run.last_metrics)


def _interrupt(session: Session, run: _Run) -> NoReturn:
    """Record the interruption and raise TrainingInterrupted (last.pt already holds this step)."""
    step = session.state.step
    session.folder.append_metrics({"kind": "event", "step": step, "event": "interrupted"})
    run.progress.close()
    raise TrainingInterrupted(f"interrupted at step {step}; checkpoint saved in {session.folder.last}", step=step)


def _finish(session: Session, run: _Run) -> TrainResult:
    """Close the progress bar, run the final evaluation (unless the callback stopped the run), and write the
    ``end`` record (who stopped the run and why; None each at max_steps)."""
    run.progress.close()
    config, state, stop = session.config, session.state, run.stop
    final = None
    wanted = config.final_evaluation and config.fr_utterances > 0 and len(session.val_set) > 0
    if wanted and (stop is None or stop.by != BY_CALLBACK) and session.folder.last.is_file():
        final = final_evaluation(session)
    why = stop.record() if stop is not None else {"stopped_by": None, "detection": None, "reason": None}
    session.folder.append_metrics({"kind": "end", "step": state.step, **why})
    return TrainResult(session.folder.root, state.step, state.best_metric, run.last_metrics, run.skipped, stop,
                       final)


# --------------------------------------------------------------------------- the loop


def train(config: TrainConfig, data: str | Path, run_dir: str | Path, callback: Callback | None = None,
          resume: bool = False, warm_start: str | Path | None = None, show_progress: bool = True,
          stop: threading.Event | None = None) -> TrainResult:
    """Train the configured acoustic model on the corpus ``data`` into ``run_dir`` and return the result.

    ``resume`` continues from ``run_dir/checkpoints/last.pt`` exactly (model, optimiser,
    position, schedules, RNG); ``warm_start`` initialises the weights from another run's
    checkpoint (the text embedding is skipped when the symbol set differs). When ``stop`` is
    set (a signal handler does it), the run saves last.pt at the end of the current step and
    raises TrainingInterrupted: no step is lost, and ``resume`` continues from there.

    A run that returns says once why it ended: the result's ``stop`` (None at ``max_steps``) and
    metrics.jsonl's last record, ``{"kind": "end", "step", "stopped_by", "detection", "reason"}``.
    """
    # --- setup: device, data, run folder, model, optimiser, state; resume or warm start; batches ---
    session = build_session(config, data, run_dir, warm_start=warm_start, resume=resume, show_progress=show_progress)
    state = session.state
    try:
        run = _start(session, show_progress)
        # --- the loop: one optimiser step per iteration ---
        while state.step < config.max_steps:
            hp = step_hparams(config, state.step, state)
            _note_phase(session, hp, run)
            outcome = train_step(session, session.next_batch, hp)

            # --- a non-finite step: skipped, but the data position moves on (the same batch would fail again) ---
            if not outcome.finite:
                _skip_nonfinite(session, run)
                continue
            run.nonfinite_in_row = 0
            state.step += 1
            _log_step(session, hp, outcome, run)

            # --- validation, the controller, the callback ---
            at_end = state.step >= config.max_steps
            if state.step % config.val_interval == 0 or at_end:
                _validate(session, hp, run, callback, show_progress)

            # --- checkpoints; a stop request (SIGTERM to a worker) ends the run here, its state saved ---
            interrupted = stop is not None and stop.is_set() and not at_end
            _save_checkpoints(session, run, at_end, interrupted)
            if interrupted:
                _interrupt(session, run)
            if run.stop is not None:
                break

        # --- the end: why the run ended, said once ---
        return _finish(session, run)
    finally:
        session.close()
