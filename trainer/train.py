"""The training loop, top to bottom: data, model, optimiser, steps, validation, checkpoints.

Reporting has one door: after every validation the metrics go to ``metrics.jsonl`` in the
run folder and to ``callback(step, metrics)``; a True return asks training to stop. The
tuner plugs in there and nowhere else.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trainer import schedules
from trainer.checkpoint import load_checkpoint, save_checkpoint, set_rng_state, warm_start as load_warm_start
from trainer.config import TrainConfig, config_from_dict, save_config
from trainer.data import (Batch, CorpusReport, FeatureCache, TTSDataset, bucketed_batches, check_corpus, collate,
                          split_train_val)
from trainer.fileio import atomic_write_text
from trainer.evaluate import Sample, autocast, compute_loss, validate
from trainer.losses import TacotronLoss
from trainer.model import Tacotron2, count_parameters
from trainer.plots import plot_alignment, plot_gate, plot_mels
from trainer.quality import ControllerConfig, QualityController, quality_score

Callback = Callable[[int, dict[str, float]], bool]


class DataError(ValueError):
    """The corpus has blocking problems; ``report`` lists them all."""

    def __init__(self, report: CorpusReport) -> None:
        self.report = report
        first = report.blocking[0].line() if report.blocking else "no usable utterances"
        super().__init__(f"{report.source}: {len(report.blocking)} blocking problem(s); first: {first}")


class NonFiniteLossError(RuntimeError):
    """The loss or gradient was non-finite for too many steps in a row."""


class TrainingStopped(Exception):
    """Internal: the callback asked to stop."""


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind."""

    run_dir: Path
    step: int
    stopped_early: bool
    best_metric: float
    last_metrics: dict[str, float] = field(default_factory=dict)
    skipped_steps: int = 0


def pick_device(name: str) -> torch.device:
    """Return the torch device for "auto" | "cpu" | "cuda" (auto: CUDA when present)."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class RunFolder:
    """Paths inside a run folder: config.yaml, metrics.jsonl, checkpoints/{last,best,step_N}.pt."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.good = self.checkpoints / "good.pt"  # last validation the quality controller found healthy
        self.plots = self.root / "plots"

    def append_metrics(self, record: dict) -> None:
        """Append one JSON line; a line is written whole in one call so readers never see half a record."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")


@dataclass
class Position:
    """Where the loop is: optimiser steps done, epoch, and next batch within the epoch."""

    step: int = 0
    epoch: int = 0
    batch: int = 0


def load_data(config: TrainConfig, data: str | Path, show_progress: bool) -> tuple[TTSDataset, TTSDataset, CorpusReport]:
    """Return (train set, validation set, report); raise DataError when the corpus has blocking problems.

    With ``skip_bad_items`` the blocking utterances are left out instead (the report lists them).
    """
    report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                          drop_unknown_chars=config.on_unknown_char == "drop")
    if (report.blocking and not config.skip_bad_items) or len(report.usable) < 2:
        raise DataError(report)
    train_items, val_items = split_train_val(report.usable, config.val_size)
    cache = FeatureCache(config.cache_dir, config.peak_normalize)
    make = lambda items: TTSDataset(items, cache, config.lang, config.on_unknown_char, show_progress)  # noqa: E731
    return make(train_items), make(val_items), report


def train(config: TrainConfig, data: str | Path, run_dir: str | Path, callback: Callback | None = None,
          resume: bool = False, warm_start: str | Path | None = None, show_progress: bool = True) -> TrainResult:
    """Train Tacotron2 on the corpus ``data`` into ``run_dir`` and return the result.

    ``resume`` continues from ``run_dir/checkpoints/last.pt`` exactly (model, optimiser,
    position, schedules, RNG); ``warm_start`` initialises the weights from another run's
    checkpoint (the text embedding is skipped when the symbol set differs).
    """
    folder = RunFolder(run_dir)
    device = pick_device(config.device)
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    seed_everything(config.seed)
    train_set, val_set, report = load_data(config, data, show_progress)
    folder.root.mkdir(parents=True, exist_ok=True)
    save_config(config, folder.config)
    if report.problems:
        atomic_write_text(folder.root / "data_report.txt", "\n".join(report.summary_lines()) + "\n")

    model = Tacotron2(config).to(device)
    criterion = TacotronLoss.from_config(config)
    base_lr = config.resolved_learning_rate(warm_start is not None)
    optimizer = torch.optim.Adam(model.parameters(), lr=base_lr, eps=config.adam_eps, weight_decay=config.weight_decay)
    position = Position()
    # Multipliers an outside controller may change; part of the checkpoint so resume keeps them.
    schedule_state = {"lr_scale": 1.0, "ga_boost": 1.0, "gate_boost": 1.0, "best_metric": math.inf,
                      "frames_per_char": train_set.frames_per_character()}
    controller = QualityController(quality_config(config)) if config.controller else None

    if resume:
        payload = load_checkpoint(folder.last, map_location=device)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        position = Position(**payload["position"])
        schedule_state.update(payload["schedule"])
        if controller is not None and "quality" in payload:
            controller.load_state_dict(payload["quality"])
        set_rng_state(payload["rng"])
    elif warm_start is not None:
        report_line = load_warm_start(model, warm_start).line()
        folder.append_metrics({"kind": "event", "step": 0, "event": "warm_start", "detail": report_line})

    with torch.no_grad():
        model.frames_per_char.fill_(schedule_state["frames_per_char"])
    lengths = train_set.frame_lengths()
    batches_per_step = config.grad_accum_steps
    epoch_batches = bucketed_batches(lengths, config.batch_size, config.seed, position.epoch)

    def next_batch() -> Batch:
        nonlocal epoch_batches
        if position.batch >= len(epoch_batches):
            position.epoch += 1
            position.batch = 0
            epoch_batches = bucketed_batches(lengths, config.batch_size, config.seed, position.epoch)
        indices = epoch_batches[position.batch]
        position.batch += 1
        return collate([train_set[i] for i in indices], config.reduction_factor).to(device)

    def save(path: Path, metrics: dict[str, float] | None = None) -> None:
        save_checkpoint(path, model=model, optimizer=optimizer, config=config.to_dict(),
                        position=vars(position), schedule=schedule_state, metrics=metrics,
                        extra={"quality": controller.state_dict()} if controller is not None else None)

    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp
                                  and not torch.cuda.is_bf16_supported())
    folder.append_metrics({"kind": "start", "step": position.step, "parameters": count_parameters(model),
                           "device": str(device), "train_utterances": len(train_set),
                           "val_utterances": len(val_set), "learning_rate": base_lr,
                           "frames_per_char": train_set.frames_per_character()})
    progress = _progress(config, position.step, show_progress)
    nonfinite_in_row = 0
    skipped_total = 0
    current_phase = ""
    window_losses: list[float] = []  # training losses since the last validation (the controller's trend)
    last_metrics: dict[str, float] = {}
    stopped_early = False
    model.train()
    step_started = time.perf_counter()
    while position.step < config.max_steps:
        step = position.step
        lr = schedules.lr_at(step, base_lr, config.warmup_steps, config.lr_restart_period, config.lr_restart_mult,
                             config.min_learning_rate) * schedule_state["lr_scale"]
        for group in optimizer.param_groups:
            group["lr"] = lr
        tf_ratio = schedules.teacher_forcing_ratio(step, config.tf_hold_steps, config.tf_decay_steps, config.tf_floor)
        ga_weight = schedules.guided_attention_weight(step, config.ga_weight, config.ga_decay,
                                                      config.ga_weight_floor)
        if config.phases:
            # The phase sets the guided-attention weight and scales the learning rate.
            phase = schedules.phase_at(step, config.max_steps)
            ga_weight = phase.ga_weight
            lr *= phase.lr_mult
            for group in optimizer.param_groups:
                group["lr"] = lr
            if phase.name != current_phase:
                folder.append_metrics({"kind": "event", "step": step, "event": "phase", "phase": phase.name,
                                       "ga_weight": phase.ga_weight, "lr_mult": phase.lr_mult})
                current_phase = phase.name
        ga_weight *= schedule_state["ga_boost"]
        ga_sigma = schedules.guided_attention_sigma(step, config.ga_sigma_start, config.ga_sigma_end,
                                                    config.ga_sigma_anneal_steps)
        criterion.gate_weight = config.gate_weight * schedule_state["gate_boost"]
        optimizer.zero_grad(set_to_none=True)
        terms_sum: dict[str, float] = {}
        finite = True
        data_seconds, frames = 0.0, 0  # time waiting for batches, and mel frames trained on, this step
        for _ in range(batches_per_step):
            fetch_started = time.perf_counter()
            batch = next_batch()
            data_seconds += time.perf_counter() - fetch_started
            frames += int(batch.mel_lens.sum())
            with autocast(device, config.amp):
                loss, terms, _ = compute_loss(model, criterion, batch, tf_ratio, ga_weight, ga_sigma)
            if not torch.isfinite(loss):
                finite = False
                break
            scaler.scale(loss / batches_per_step).backward()
            for name, value in terms.items():
                terms_sum[name] = terms_sum.get(name, 0.0) + float(value) / batches_per_step
        grad_norm = math.nan
        if finite:
            scaler.unscale_(optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip_norm))
            finite = math.isfinite(grad_norm)
        if not finite:
            # Skip the update but keep the data position moving: the same batch would fail again.
            optimizer.zero_grad(set_to_none=True)
            nonfinite_in_row += 1
            skipped_total += 1
            folder.append_metrics({"kind": "event", "step": step, "event": "nonfinite_skip",
                                   "in_a_row": nonfinite_in_row})
            if nonfinite_in_row >= config.max_nonfinite_steps:
                save(folder.root / "checkpoints" / "nonfinite.pt")
                raise NonFiniteLossError(
                    f"loss or gradient non-finite for {nonfinite_in_row} steps in a row at step {step} "
                    f"(max_nonfinite_steps={config.max_nonfinite_steps}); last good state in {folder.last}")
            continue
        nonfinite_in_row = 0
        scaler.step(optimizer)
        scaler.update()
        position.step += 1
        now = time.perf_counter()
        seconds = now - step_started
        step_started = now
        if position.step % config.log_interval == 0 or position.step == 1:
            folder.append_metrics({"kind": "train", "step": position.step, "lr": lr, "tf_ratio": tf_ratio,
                                   "ga_weight": ga_weight, "ga_sigma": ga_sigma, "grad_norm": grad_norm,
                                   "sec_per_step": seconds, "data_sec": data_seconds, "frames": frames,
                                   **{f"train_{k}": v for k, v in terms_sum.items()}})
        progress.update(1)
        progress.set_postfix(loss=f"{terms_sum.get('total', math.nan):.3f}", s_step=f"{seconds:.2f}", refresh=False)

        at_end = position.step >= config.max_steps
        window_losses.append(terms_sum.get("total", math.nan))
        if position.step % config.val_interval == 0 or at_end:
            last_metrics, sample = validate(model, criterion, val_set, config, device, ga_weight, ga_sigma,
                                            schedule_state["frames_per_char"], position.step / config.max_steps)
            last_metrics.update(train_loss=sum(window_losses) / len(window_losses), lr=lr, tf_ratio=tf_ratio,
                                ga_weight=ga_weight, quality_score=quality_score(last_metrics, "tf_"))
            if "fr_diagonality" in last_metrics:
                last_metrics["fr_quality_score"] = quality_score(last_metrics, "fr_")
            window_losses.clear()
            folder.append_metrics({"kind": "val", "step": position.step, **last_metrics})
            if show_progress:
                progress.write(_val_line(position.step, last_metrics))
            if config.plots and sample is not None:
                write_validation_plots(folder.plots, position.step, sample, config.stop_threshold)
            if controller is not None:
                stopped_early = apply_quality_control(controller, position.step, last_metrics, folder, model,
                                                      optimizer, schedule_state, device, save)
            if last_metrics["val_mel_postnet_l1"] < schedule_state["best_metric"]:
                schedule_state["best_metric"] = last_metrics["val_mel_postnet_l1"]
                save(folder.best, last_metrics)
            if callback is not None and callback(position.step, dict(last_metrics)):
                stopped_early = True
        if position.step % config.checkpoint_interval == 0 or at_end or stopped_early:
            save(folder.last, last_metrics)
            if config.keep_step_checkpoints and position.step % config.checkpoint_interval == 0:
                save(folder.checkpoints / f"step_{position.step:06d}.pt", last_metrics)
        if stopped_early:
            break
    progress.close()
    return TrainResult(folder.root, position.step, stopped_early, schedule_state["best_metric"], last_metrics,
                       skipped_total)


def quality_config(config: TrainConfig) -> ControllerConfig:
    """Return the quality controller's settings for this run (judging windows scale with max_steps)."""
    return ControllerConfig.for_budget(config.max_steps, patience=config.early_stop_patience,
                                       early_stop=config.early_stop, max_ga_boosts=config.controller_max_ga_boosts,
                                       max_lr_cuts=config.controller_max_lr_cuts,
                                       max_rollbacks=config.controller_max_rollbacks)


def apply_quality_control(controller: QualityController, step: int, metrics: dict[str, float], folder: RunFolder,
                          model: Tacotron2, optimizer: torch.optim.Optimizer, schedule_state: dict[str, float],
                          device: torch.device, save: Callable[[Path, dict[str, float]], None]) -> bool:
    """Let the controller judge one validation, carry out its decisions, and return True to stop.

    Every decision goes to metrics.jsonl as a ``quality`` record (step, detection, evidence,
    action). Multipliers (learning rate, guided-attention and gate weights) take effect from
    the next step. A rollback restores the model and optimiser of ``good.pt`` only: the data
    position, RNG and the controller's own counts move on, so the same batches are not
    replayed and the limits are not undone.
    """
    decisions = controller.observe(step, metrics)
    for decision in decisions:
        folder.append_metrics(decision.to_record())
    schedule_state.update(controller.multipliers())
    if any(d.action == "rollback" for d in decisions) and folder.good.is_file():
        payload = load_checkpoint(folder.good, map_location=device)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        folder.append_metrics({"kind": "event", "step": step, "event": "rollback",
                               "to_step": payload["position"]["step"]})
    if controller.last_good_step == step:
        save(folder.good, metrics)
    return controller.stop_requested


def write_validation_plots(folder: Path, step: int, sample: Sample, gate_threshold: float) -> None:
    """Write the validation pictures of one utterance as PNGs named ``step_NNNNNN_<what>.png`` in ``folder``."""
    stem = folder / f"step_{step:06d}"
    plot_alignment(sample.tf_attention, f"{stem}_alignment_tf.png", f"teacher-forced attention, step {step}")
    plot_alignment(sample.fr_attention, f"{stem}_alignment_fr.png", f"free-running attention, step {step}")
    plot_mels(sample.target_mel, sample.fr_mel, f"{stem}_mel.png", f"target vs free-running mel, step {step}")
    plot_gate(sample.tf_gate, sample.gate_target, gate_threshold, f"{stem}_gate.png",
              f"teacher-forced stop gate, step {step}")


def _progress(config: TrainConfig, initial: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=config.max_steps, initial=initial, desc="train", unit="step", disable=not show,
                file=sys.stderr, dynamic_ncols=True)


def _val_line(step: int, metrics: dict[str, float]) -> str:
    keys = ("val_mel_postnet_l1", "tf_diagonality", "tf_focus", "tf_gate_balanced_accuracy")
    return f"step {step}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in keys if k in metrics)


def config_for_resume(run_dir: str | Path, max_steps: int | None = None) -> TrainConfig:
    """Return the config saved in ``run_dir`` (optionally with a new ``max_steps``) for ``--resume``."""
    from trainer.yamlio import safe_load

    values = safe_load(RunFolder(run_dir).config.read_text(encoding="utf-8"))
    if max_steps is not None:
        values["max_steps"] = max_steps
    return config_from_dict(values, source=str(RunFolder(run_dir).config))
