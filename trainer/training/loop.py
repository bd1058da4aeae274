"""The training loop, top to bottom: data, model, optimiser, steps, validation, checkpoints.

``train()`` reads in labelled blocks. What changes from step to step lives in one
``TrainState`` (position, the quality controller's multipliers, the best objective); what a
step's schedules say is computed once per step by the pure ``step_hparams``; one
optimiser step is ``train_step`` and one validation ``on_validation``. No module
attribute is changed while training: the loss gets this step's weights as an argument.

Reporting has one door: after every validation the metrics go to ``metrics.jsonl`` in the
run folder and to ``callback(step, metrics)``; a True return asks training to stop. The
tuner plugs in there and nowhere else.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from trainer.audio.mel import SAMPLE_RATE, griffin_lim, write_wav
from trainer.config import TrainConfig, config_from_stored, save_config
from trainer.data.batches import Batch, Prefetcher, bucketed_batches, collate
from trainer.data.corpus import CorpusReport, DataError, check_corpus, split_train_val
from trainer.data.dataset import TTSDataset
from trainer.errors import ConfigError, NonFiniteLossError, TrainingInterrupted
from trainer.evaluation import metric_registry
from trainer.evaluation.asr import AsrScorer, unavailable_reason
from trainer.evaluation.metric_registry import MINIMIZE
from trainer.evaluation.plots import plot_alignment, plot_gate, plot_mels
from trainer.evaluation.quality_score import quality_score
from trainer.evaluation.validate import Sample, amp_dtype, autocast, band_range, validate
from trainer.fileio import atomic_write_text, remove_stale_temporaries
from trainer.model.architectures import build_model
from trainer.model.checkpoint import check_warm_start, load_checkpoint, load_resumable, save_checkpoint, set_rng_state
from trainer.model.checkpoint import warm_start as load_warm_start
from trainer.model.contract import AcousticModel, ModelOutputs, count_parameters
from trainer.synthesis.vocoder import Vocoder, make_vocoder
from trainer.training import schedules
from trainer.training.losses import LossWeights, TacotronLoss
from trainer.training.quality import QualityController
from trainer.training.quality_state import ControllerConfig
from trainer.yamlio import safe_load

Callback = Callable[[int, dict[str, float]], bool]


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind; ``best_metric`` is the best value of ``config.best_metric``."""

    run_dir: Path
    step: int
    stopped_early: bool
    best_metric: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0


def pick_device(name: str) -> torch.device:
    """Return the torch device for "auto" | "cpu" | "cuda" (auto: CUDA when present)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' asked for, but this machine has no CUDA device (use 'auto' or 'cpu')")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def configure_cuda(device: torch.device) -> None:
    """Let float32 matrix products and convolutions on CUDA use TF32 tensor cores (Ampere and later).

    TF32 keeps float32's range with a 10-bit mantissa, well inside what mixed precision
    already accepts, for several times the float32 rate. ``cudnn.benchmark`` stays off:
    batches are length-bucketed, so almost every batch brings new convolution and LSTM
    shapes and the autotuner would search again for each one.
    """
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RunFolder:
    """Paths inside a run folder: config.yaml, metrics.jsonl, checkpoints/{last,best,good,step_N}.pt, plots/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.good = self.checkpoints / "good.pt"  # last validation the quality controller found healthy
        self.plots = self.root / "plots"

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line stamped with its wall-clock ``time`` (unix seconds).

        A line is written whole in one call, so readers never see half a record; the time lets a
        reader order the records of different runs (a trial's and its retry's, say).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**record, "time": round(time.time(), 3)}, sort_keys=True) + "\n")


# --------------------------------------------------------------------------- state and schedules


@dataclass
class TrainState:
    """What changes while training and what a checkpoint restores besides weights and optimiser.

    ``step`` counts optimiser steps done; ``epoch`` and ``batch`` (the next batch within the
    epoch) fix the data position, so a resume sees the same batches. The multipliers are
    the quality controller's (1.0 until it intervenes). ``frames_per_char`` is the training
    corpus's mel frames per text token (the adaptive stop gate's length estimate).
    ``best_metric`` is the best value so far of ``config.best_metric`` (the one of best.pt).
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


# --------------------------------------------------------------------------- one step


@dataclass
class Session:
    """The objects one run works with; built once by ``train``."""

    config: TrainConfig
    folder: RunFolder
    device: torch.device
    model: AcousticModel
    criterion: TacotronLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    state: TrainState
    train_set: TTSDataset
    val_set: TTSDataset
    controller: QualityController | None
    band_range: torch.Tensor  # (2, 80) lowest and highest value of each mel band in the training corpus
    asr: AsrScorer | None = None  # scores free-running intelligibility (fr_wer) when it can
    vocode: Vocoder = griffin_lim  # the config's vocoder: validation samples and fr_wer hear its audio

    def save(self, path: Path, metrics: dict[str, float] | None = None) -> None:
        """Write a checkpoint of the whole run (model, optimiser, state, controller, RNG) to ``path``."""
        extra: dict[str, Any] = {}
        if self.controller is not None:
            extra["quality"] = self.controller.state_dict()
        if self.scaler.is_enabled():
            extra["grad_scaler"] = self.scaler.state_dict()  # fp16's loss scale: resume goes on with it
        save_checkpoint(path, model=self.model, optimizer=self.optimizer, config=self.config.to_dict(),
                        position=self.state.position(), schedule=self.state.schedule(), metrics=metrics,
                        extra=extra or None)


@dataclass
class StepOutcome:
    """What ``train_step`` did: ``finite`` False means the update was skipped."""

    finite: bool
    terms: dict[str, float]  # unweighted loss terms, averaged over the accumulated batches
    grad_norm: float
    frames: int  # mel frames trained on
    data_seconds: float  # time spent waiting for batches


def compute_loss(model: AcousticModel, criterion: TacotronLoss, batch: Batch, teacher_forcing: float,
                 weights: LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor], ModelOutputs]:
    """Run the model on ``batch`` and return (total loss, detached terms, model outputs)."""
    out = model(batch, teacher_forcing)
    total, terms = criterion(out, batch, weights)
    return total, terms, out


def train_step(session: Session, next_batch: Callable[[], Batch], hp: StepHParams) -> StepOutcome:
    """Run one optimiser step over ``grad_accum_steps`` batches: accumulate, guard, clip, update.

    A non-finite loss stops the accumulation at once (the remaining batches are not
    drawn); a non-finite loss or gradient norm skips the update, leaving the weights as
    they were.
    """
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
            loss, terms, _ = compute_loss(session.model, session.criterion, batch, hp.tf_ratio, hp.loss_weights)
        if not torch.isfinite(loss):
            finite = False
            break
        scaler.scale(loss / accum).backward()
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
    return StepOutcome(finite, terms_sum, grad_norm, frames, data_seconds)


# --------------------------------------------------------------------------- one validation


def on_validation(session: Session, hp: StepHParams, train_loss: float) -> tuple[dict[str, float], bool]:
    """Validate, record, let the controller act, keep the best checkpoint; return (metrics, stop?).

    The controller's multipliers take effect from the next step; ``callback`` is not called
    here (the caller hands it the metrics).
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
    stop = False
    if session.controller is not None:
        stop = apply_quality_control(session, metrics)
    if is_better(config.best_metric, metrics.get(config.best_metric, math.nan), state.best_metric):
        state.best_metric = metrics[config.best_metric]
        session.save(folder.best, metrics)
    return metrics, stop


def is_better(name: str, value: float, best: float) -> bool:
    """True when ``value`` of registered metric ``name`` beats ``best`` (NaN never does; ``best`` NaN: any finite)."""
    if not math.isfinite(value):
        return False
    if math.isnan(best):
        return True
    return value < best if metric_registry.get(name).direction == MINIMIZE else value > best


def apply_quality_control(session: Session, metrics: dict[str, float]) -> bool:
    """Let the controller judge one validation, carry out its decisions, and return True to stop.

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
    return bool(controller.stop_requested)


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


# --------------------------------------------------------------------------- the loop


def load_data(config: TrainConfig, data: str | Path,
              show_progress: bool) -> tuple[TTSDataset, TTSDataset, CorpusReport]:
    """Return (train set, validation set, report); raise DataError when the corpus has blocking problems.

    With ``skip_bad_items`` the blocking utterances are left out instead (the report lists them).
    """
    report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                          drop_unknown_chars=config.on_unknown_char == "drop")
    if (report.blocking and not config.skip_bad_items) or len(report.usable) < 2:
        raise DataError(report)
    train_items, val_items = split_train_val(report.usable, config.val_size)
    return (TTSDataset.for_config(train_items, config, show_progress),
            TTSDataset.for_config(val_items, config, show_progress), report)


def asr_scorer(config: TrainConfig, vocode: Vocoder = griffin_lim) -> tuple[AsrScorer | None, str | None]:
    """Return (the intelligibility scorer, or None; the one line saying why it is off, or None).

    ``fr_asr: auto`` scores when the recogniser is installed and the language is one it
    understands; ``on`` makes a missing one a ConfigError; ``off`` never scores.
    """
    if config.fr_asr == "off" or config.fr_utterances == 0:
        return None, None
    reason = unavailable_reason(config.lang)
    if reason is not None:
        if config.fr_asr == "on":
            raise ConfigError(f"fr_asr: on, but {reason}")
        return None, f"intelligibility (fr_wer) is off: {reason}"
    return AsrScorer(vocode=vocode, sample_rate=SAMPLE_RATE), None


def quality_config(config: TrainConfig) -> ControllerConfig:
    """Return the quality controller's settings for this run (judging windows scale with max_steps)."""
    return ControllerConfig.for_budget(config.max_steps, patience=config.early_stop_patience,
                                       early_stop=config.early_stop, max_ga_boosts=config.controller_max_ga_boosts,
                                       max_lr_cuts=config.controller_max_lr_cuts,
                                       max_rollbacks=config.controller_max_rollbacks)


def train(config: TrainConfig, data: str | Path, run_dir: str | Path, callback: Callback | None = None,
          resume: bool = False, warm_start: str | Path | None = None, show_progress: bool = True,
          stop: threading.Event | None = None) -> TrainResult:
    """Train the configured acoustic model on the corpus ``data`` into ``run_dir`` and return the result.

    ``resume`` continues from ``run_dir/checkpoints/last.pt`` exactly (model, optimiser,
    position, schedules, RNG); ``warm_start`` initialises the weights from another run's
    checkpoint (the text embedding is skipped when the symbol set differs). When ``stop`` is
    set (a signal handler does it), the run saves last.pt at the end of the current step and
    raises TrainingInterrupted: no step is lost, and ``resume`` continues from there.
    """
    # --- setup: device, data, run folder ---
    folder = RunFolder(run_dir)
    device = pick_device(config.device)
    configure_cuda(device)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    seed_everything(config.seed)
    train_set, val_set, report = load_data(config, data, show_progress)
    vocode = make_vocoder(config.vocoder, config.vocoder_config, device)  # a bad vocoder fails before writing
    if warm_start is not None and not resume:
        check_warm_start(warm_start)  # so does a file no warm start can read
    asr, asr_off = asr_scorer(config, vocode)
    folder.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.root)
    save_config(config, folder.config)
    if report.problems:
        atomic_write_text(folder.root / "data_report.txt", "\n".join(report.summary_lines()) + "\n")

    # --- model, loss, optimiser, state ---
    model = build_model(config).to(device)
    base_lr = config.resolved_learning_rate(warm_start is not None)
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr, eps=config.adam_eps, weight_decay=config.weight_decay)
    # fp16 needs loss scaling; bf16 and the CPU do not.
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp
                                  and amp_dtype(config) == torch.float16)
    session = Session(config, folder, device, model, TacotronLoss.from_config(config), optimizer, scaler,
                      TrainState(base_lr=base_lr, frames_per_char=train_set.frames_per_character()),
                      train_set, val_set, QualityController(quality_config(config)) if config.controller else None,
                      band_range(train_set), asr, vocode)
    state = session.state

    # --- resume exactly, or warm-start the weights ---
    if resume:
        used, payload, skipped = load_resumable(folder.checkpoints, map_location=device)
        if used != folder.last:
            line = f"resuming from {used.name} (step {payload['position']['step']}): " + "; ".join(skipped)
            folder.append_metrics({"kind": "event", "step": int(payload["position"]["step"]),
                                   "event": "resume_fallback", "checkpoint": used.name, "skipped": skipped})
            print(line, file=sys.stderr)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        state.restore(payload)
        if session.controller is not None and "quality" in payload:
            session.controller.load_state_dict(payload["quality"])
        if scaler.is_enabled() and "grad_scaler" in payload:
            scaler.load_state_dict(payload["grad_scaler"])
        set_rng_state(payload["rng"])
    elif warm_start is not None:
        state.warm_started = True
        report_line = load_warm_start(model, warm_start).line()
        folder.append_metrics({"kind": "event", "step": 0, "event": "warm_start", "detail": report_line})
    model.set_frames_per_char(state.frames_per_char)

    # --- data order: length-bucketed batches, deterministic per (seed, epoch) ---
    lengths = train_set.frame_lengths()
    epoch_batches = bucketed_batches(lengths, config.batch_size, config.seed, state.epoch)

    def next_batch() -> Batch:
        nonlocal epoch_batches
        if state.batch >= len(epoch_batches):
            state.epoch += 1
            state.batch = 0
            epoch_batches = bucketed_batches(lengths, config.batch_size, config.seed, state.epoch)
        indices = epoch_batches[state.batch]
        state.batch += 1
        following = epoch_batches[state.batch] if state.batch < len(epoch_batches) else None
        return prefetcher.get(indices, following)

    prefetcher = Prefetcher(lambda indices: collate([train_set[i] for i in indices], config.model.reduction_factor),
                            device)

    try:
        # --- the loop: one optimiser step per iteration ---
        folder.append_metrics({"kind": "start", "step": state.step, "parameters": count_parameters(model),
                               "device": str(device), "train_utterances": len(train_set),
                               "val_utterances": len(val_set), "learning_rate": base_lr,
                               "frames_per_char": train_set.frames_per_character()})
        progress = tqdm(total=config.max_steps, initial=state.step, desc="train", unit="step",
                        disable=not show_progress, file=sys.stderr, dynamic_ncols=True)
        if asr_off is not None:
            folder.append_metrics({"kind": "event", "step": state.step, "event": "asr_off", "reason": asr_off})
            if show_progress:
                progress.write(asr_off, file=sys.stderr)
        nonfinite_in_row = skipped_total = 0
        current_phase = ""
        window_losses: list[float] = []  # training losses since the last validation (the controller's trend)
        last_metrics: dict[str, float] = {}
        stopped_early = False
        model.train()
        step_started = time.perf_counter()
        while state.step < config.max_steps:
            hp = step_hparams(config, state.step, state)
            if hp.phase is not None and hp.phase.name != current_phase:
                folder.append_metrics({"kind": "event", "step": state.step, "event": "phase", "phase": hp.phase.name,
                                       "ga_weight": hp.phase.ga_weight, "lr_mult": hp.phase.lr_mult})
                current_phase = hp.phase.name
            outcome = train_step(session, next_batch, hp)

            # --- a non-finite step: skipped, but the data position moves on (the same batch would fail again) ---
            if not outcome.finite:
                nonfinite_in_row += 1
                skipped_total += 1
                folder.append_metrics({"kind": "event", "step": state.step, "event": "nonfinite_skip",
                                       "in_a_row": nonfinite_in_row})
                if nonfinite_in_row >= config.max_nonfinite_steps:
                    session.save(folder.checkpoints / "nonfinite.pt")
                    raise NonFiniteLossError(
                        f"loss or gradient non-finite for {nonfinite_in_row} steps in a row at step {state.step} "
                        f"(max_nonfinite_steps={config.max_nonfinite_steps}); last good state in {folder.last}")
                continue
            nonfinite_in_row = 0
            state.step += 1

            # --- logging ---
            now = time.perf_counter()
            seconds, step_started = now - step_started, now
            if state.step % config.log_interval == 0 or state.step == 1:
                folder.append_metrics({"kind": "train", "step": state.step, "lr": hp.lr, "tf_ratio": hp.tf_ratio,
                                       "ga_weight": hp.loss_weights.ga_weight, "ga_sigma": hp.loss_weights.ga_sigma,
                                       "grad_norm": outcome.grad_norm, "sec_per_step": seconds,
                                       "data_sec": outcome.data_seconds, "frames": outcome.frames,
                                       **{f"train_{k}": v for k, v in outcome.terms.items()}})
            progress.update(1)
            progress.set_postfix(loss=f"{outcome.terms.get('total', math.nan):.3f}", s_step=f"{seconds:.2f}",
                                 refresh=False)
            window_losses.append(outcome.terms.get("total", math.nan))

            # --- validation, the controller, the callback ---
            at_end = state.step >= config.max_steps
            if state.step % config.val_interval == 0 or at_end:
                last_metrics, controller_stop = on_validation(session, hp, sum(window_losses) / len(window_losses))
                window_losses.clear()
                if show_progress:
                    progress.write(_val_line(state.step, last_metrics))
                asked = callback is not None and bool(callback(state.step, dict(last_metrics)))  # called even on a stop
                stopped_early = controller_stop or asked

            # --- checkpoints; a stop request (SIGTERM to a worker) ends the run here, its state saved ---
            interrupted = stop is not None and stop.is_set() and not at_end
            if state.step % config.checkpoint_interval == 0 or at_end or stopped_early or interrupted:
                session.save(folder.last, last_metrics)
                if config.keep_step_checkpoints and state.step % config.checkpoint_interval == 0:
                    session.save(folder.checkpoints / f"step_{state.step:06d}.pt", last_metrics)
            if interrupted:
                folder.append_metrics({"kind": "event", "step": state.step, "event": "interrupted"})
                progress.close()
                raise TrainingInterrupted(f"interrupted at step {state.step}; checkpoint saved in {folder.last}",
                                          step=state.step)
            if stopped_early:
                break
        progress.close()
        return TrainResult(folder.root, state.step, stopped_early, state.best_metric, last_metrics, skipped_total)
    finally:
        prefetcher.close()


def _val_line(step: int, metrics: dict[str, float]) -> str:
    keys = ("val_mel_postnet_l1", "fr_mcd", "tf_diagonality", "tf_focus", "tf_gate_balanced_accuracy")
    return f"step {step}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics)


def config_for_resume(run_dir: str | Path, max_steps: int | None = None) -> TrainConfig:
    """Return the config saved in ``run_dir`` (optionally with a new ``max_steps``) for ``--resume``."""
    values = safe_load(RunFolder(run_dir).config.read_text(encoding="utf-8"))
    if max_steps is not None:
        values["max_steps"] = max_steps
    return config_from_stored(values, source=str(RunFolder(run_dir).config))
