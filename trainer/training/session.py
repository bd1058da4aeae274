"""One training run's objects, built once: ``build_session`` makes what ``train()`` runs on.

A ``Session`` holds the model, optimiser, loss, grad scaler, datasets, ``TrainState``,
quality controller and ``next_batch``, the batch source. ``train()`` builds one and runs
``train_step(session, session.next_batch, step_hparams(...))`` (``trainer.training.loop``)
once per optimiser step; a benchmark that builds a session the same way times exactly
that step.

Building a session, in this order (the order fixes the RNG draws, so ``--resume`` stays
exact): the device and seeds; the corpus, read and checked; the vocoder and the
intelligibility scorer, so a bad one fails before anything is written; the run folder and
its config; the model, optimiser, scaler and state; then an exact resume or a warm start
of the weights; last, the batch source at the state's data position.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trainer.audio.mel import SAMPLE_RATE, griffin_lim
from trainer.config import save_config
from trainer.data.batches import Batch, Prefetcher, bucketed_batches, collate
from trainer.data.corpus import DataError, check_corpus, split_train_val
from trainer.data.dataset import TTSDataset
from trainer.errors import ConfigError
from trainer.evaluation import metric_registry
from trainer.evaluation.asr import AsrScorer, unavailable_reason, vocabulary
from trainer.evaluation.metric_registry import MAXIMIZE, TEACHER_FORCED_LOSS_PREFIX
from trainer.evaluation.validate import amp_dtype, band_range
from trainer.fileio import atomic_write_text, remove_stale_temporaries
from trainer.model.architectures import build_model
from trainer.model.checkpoint import check_warm_start, load_resumable, save_checkpoint, set_rng_state
from trainer.model.checkpoint import warm_start as load_warm_start
from trainer.synthesis.vocoder import make_vocoder
from trainer.training.losses import TacotronLoss
from trainer.training.quality import QualityController
from trainer.training.quality_state import ControllerConfig
from trainer.training.run_folder import RunFolder
from trainer.training.state import TrainState

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.data.corpus import CorpusReport
    from trainer.model.contract import AcousticModel
    from trainer.synthesis.vocoder import Vocoder

__all__ = ["BatchSource", "Session", "asr_scorer", "build_session", "configure_cuda", "load_data", "pick_device",
           "quality_config", "seed_everything"]


# --------------------------------------------------------------------------- device and seeds


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


# --------------------------------------------------------------------------- data, scorer, controller


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


def asr_scorer(config: TrainConfig, vocode: Vocoder = griffin_lim,
               seen: frozenset[str] | None = None) -> tuple[AsrScorer | None, str | None]:
    """Return (the intelligibility scorer, or None; the one line saying why it is off, or None).

    ``fr_asr: auto`` scores when the recogniser is installed and the language is one it
    understands; ``on`` makes a missing one a ConfigError; ``off`` never scores. ``seen``,
    the training texts' words, splits the word error rate into seen and unseen words.
    """
    if config.fr_asr == "off" or config.fr_utterances == 0:
        return None, None
    reason = unavailable_reason(config.lang)
    if reason is not None:
        if config.fr_asr == "on":
            raise ConfigError(f"fr_asr: on, but {reason}")
        return None, f"intelligibility (fr_wer) is off: {reason}"
    return AsrScorer(vocode=vocode, sample_rate=SAMPLE_RATE, seen=seen), None


def quality_config(config: TrainConfig) -> ControllerConfig:
    """Return the quality controller's settings for this run (judging windows scale with max_steps).

    The keys in ``controller_frozen_keys`` are the tuner's: the controller leaves them as they are.
    No improvement is judged on the run's ``selection_metric`` in its registered direction (the
    figure best.pt is chosen by), explosions only when it is a teacher-forced loss.
    """
    objective = metric_registry.get(config.selection_metric)
    return ControllerConfig.for_budget(config.max_steps, patience=config.early_stop_patience,
                                       objective_metric=objective.name,
                                       objective_maximized=objective.direction == MAXIMIZE,
                                       objective_is_loss=objective.name.startswith(TEACHER_FORCED_LOSS_PREFIX),
                                       early_stop=config.early_stop, max_ga_boosts=config.controller_max_ga_boosts,
                                       max_lr_cuts=config.controller_max_lr_cuts,
                                       max_rollbacks=config.controller_max_rollbacks,
                                       frozen_keys=tuple(config.controller_frozen_keys))


# --------------------------------------------------------------------------- the batch source


class BatchSource:
    """``next_batch()``: the training batches in order, length-bucketed and deterministic per (seed, epoch).

    The data position is the state's (``epoch``, ``batch``: the next batch within the epoch),
    read at the first call (a resume restores it after the source is made) and moved on by
    every call, so a checkpoint of the state resumes with the very next batch. On CUDA the
    following batch is collated in the background meanwhile (``Prefetcher``).
    """

    def __init__(self, train_set: TTSDataset, config: TrainConfig, state: TrainState, device: torch.device) -> None:
        self._train_set, self._config, self._state = train_set, config, state
        self._lengths = train_set.frame_lengths()
        self._epoch_batches: list[list[int]] | None = None  # the current epoch's, from the first call on
        self._prefetcher = Prefetcher(self._collate, device)

    def __call__(self) -> Batch:
        """Return the next batch on the device; past the epoch's last batch the next epoch begins."""
        state = self._state
        if self._epoch_batches is None:
            self._epoch_batches = self._batches_of(state.epoch)
        if state.batch >= len(self._epoch_batches):
            state.epoch += 1
            state.batch = 0
            self._epoch_batches = self._batches_of(state.epoch)
        indices = self._epoch_batches[state.batch]
        state.batch += 1
        following = self._epoch_batches[state.batch] if state.batch < len(self._epoch_batches) else None
        return self._prefetcher.get(indices, following)

    def close(self) -> None:
        """Stop the background collation (CUDA); the source hands out no more batches."""
        self._prefetcher.close()

    def _batches_of(self, epoch: int) -> list[list[int]]:
        return bucketed_batches(self._lengths, self._config.batch_size, self._config.seed, epoch)

    def _collate(self, indices: list[int]) -> Batch:
        return collate([self._train_set[i] for i in indices], self._config.model.reduction_factor)


# --------------------------------------------------------------------------- the session


@dataclass
class Session:
    """The objects one run works with; built once by ``build_session``. Close it when done (``close``)."""

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
    next_batch: BatchSource
    asr: AsrScorer | None = None  # scores free-running intelligibility (fr_wer) when it can
    asr_off: str | None = None  # the one line saying why fr_wer is off (said when training starts)
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

    def close(self) -> None:
        """Release the batch source's background thread (CUDA)."""
        self.next_batch.close()


def build_session(config: TrainConfig, data: str | Path, run_dir: str | Path, *,
                  warm_start: str | Path | None = None, resume: bool = False,
                  show_progress: bool = False) -> Session:
    """Return the session of a run of ``config`` on the corpus ``data`` in ``run_dir``, ready for its next step.

    ``resume`` continues from ``run_dir/checkpoints/last.pt`` exactly (model, optimiser,
    position, schedules, RNG; an unreadable one falls back to an older checkpoint, said on
    stderr and in metrics.jsonl); ``warm_start`` initialises the weights from another run's
    checkpoint (the text embedding is skipped when the symbol set differs). Writes the run
    folder's config (and ``data_report.txt`` when the corpus had problems); ``show_progress``
    shows the feature cache's progress bar. The model is in training mode. Bad input raises
    before anything is written: DataError (the corpus), ConfigError (a device, vocoder or
    recogniser the config asks for and this machine lacks), CheckpointError (a --warm-start
    file no warm start can read); a resume with no readable checkpoint raises CheckpointError.
    """
    folder = RunFolder(run_dir)
    device = _prepare_device(config)
    train_set, val_set, report = load_data(config, data, show_progress)
    vocode = make_vocoder(config.vocoder, config.vocoder_config, device)  # a bad vocoder fails before writing
    if warm_start is not None and not resume:
        check_warm_start(warm_start)  # so does a file no warm start can read
    asr, asr_off = asr_scorer(config, vocode, vocabulary([example.text for example in train_set.examples]))
    _write_run_folder(config, folder, report)
    session = _new_session(config, folder, device, train_set, val_set, warm_started=warm_start is not None)
    session.asr, session.asr_off, session.vocode = asr, asr_off, vocode
    if resume:
        _resume(session)
    elif warm_start is not None:
        _warm_start(session, warm_start)
    session.model.set_frames_per_char(session.state.frames_per_char)
    return session


def _prepare_device(config: TrainConfig) -> torch.device:
    """Return the run's device, with CUDA's TF32, the thread count and every RNG's seed set."""
    device = pick_device(config.device)
    configure_cuda(device)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    seed_everything(config.seed)
    return device


def _write_run_folder(config: TrainConfig, folder: RunFolder, report: CorpusReport) -> None:
    """Create the run folder (leftover temporaries removed) with config.yaml, and data_report.txt if needed."""
    folder.root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.root)
    save_config(config, folder.config)
    if report.problems:
        atomic_write_text(folder.root / "data_report.txt", "\n".join(report.summary_lines()) + "\n")


def _new_session(config: TrainConfig, folder: RunFolder, device: torch.device, train_set: TTSDataset,
                 val_set: TTSDataset, warm_started: bool) -> Session:
    """Return a session with a fresh model, optimiser, loss, scaler, state, controller and batch source."""
    model = build_model(config).to(device)
    base_lr = config.resolved_learning_rate(warm_started)
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr, eps=config.adam_eps, weight_decay=config.weight_decay)
    # fp16 needs loss scaling; bf16 and the CPU do not.
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp
                                  and amp_dtype(config) == torch.float16)
    criterion = TacotronLoss.from_config(config)
    state = TrainState(base_lr=base_lr, frames_per_char=train_set.frames_per_character())
    return Session(config, folder, device, model, criterion, optimizer, scaler, state,
                   train_set, val_set, QualityController(quality_config(config)) if config.controller else None,
                   band_range(train_set), BatchSource(train_set, config, state, device))


def _resume(session: Session) -> None:
    """Restore model, optimiser, state, controller, grad scaler and RNG from the run's newest readable checkpoint."""
    folder = session.folder
    used, payload, skipped = load_resumable(folder.checkpoints, map_location=session.device)
    if used != folder.last:
        line = f"resuming from {used.name} (step {payload['position']['step']}): " + "; ".join(skipped)
        folder.append_metrics({"kind": "event", "step": int(payload["position"]["step"]),
                               "event": "resume_fallback", "checkpoint": used.name, "skipped": skipped})
        print(line, file=sys.stderr)
    session.model.load_state_dict(payload["model"])
    session.optimizer.load_state_dict(payload["optimizer"])
    session.state.restore(payload)
    if session.controller is not None and "quality" in payload:
        session.controller.load_state_dict(payload["quality"])
    if session.scaler.is_enabled() and "grad_scaler" in payload:
        session.scaler.load_state_dict(payload["grad_scaler"])
    set_rng_state(payload["rng"])


def _warm_start(session: Session, checkpoint: str | Path) -> None:
    """Load the weights of another run's ``checkpoint`` (see ``trainer.model.checkpoint.warm_start``) and log it."""
    session.state.warm_started = True
    report_line = load_warm_start(session.model, checkpoint).line()
    session.folder.append_metrics({"kind": "event", "step": 0, "event": "warm_start", "detail": report_line})
