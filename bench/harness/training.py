"""Training runs the benches share: the configurations the alignment benches compare, short runs executed in
parallel, and the step records the speed benches time.

A bench run (bench/baseline.py, bench/ablation.py) is the tiny (or base) preset trained for ``steps``
optimiser steps with a validation every ``every`` steps. The preset's schedules are kept as a user gets
them, so a fix that acts late shows little in a short run (in the tiny preset scheduled sampling starts
at step 300 and σ anneals over 1,000 steps); the phases take their proportions of the run.

On a CPU the runs go two at a time, one thread each: at the tiny size a second thread does not
pay (docs/PERFORMANCE.md, "Threads"), so two one-thread runs on 2 cores each step about as fast
as one two-thread run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypedDict

from harness.stats import Spread, spread

TARGET = 0.85  # teacher-forced diagonality that counts as aligned: the figure the original design promised

# The published Tacotron2 recipe (NVIDIA/tacotron2 hparams.py): no guided attention, prenet
# dropout 0.5 in training and inference, encoder/postnet dropout 0.5, attention/decoder 0.1,
# constant learning rate 1e-3, fixed stop threshold 0.5, full teacher forcing, plain MSE on
# the mels and an unweighted gate loss. Model sizes stay the preset's.
PUBLISHED_DROPOUT: dict[str, Any] = {"prenet_dropout": 0.5, "prenet_dropout_inference": 0.5,
                                     "encoder_dropout": 0.5, "postnet_dropout": 0.5,
                                     "attention_dropout": 0.1, "decoder_dropout": 0.1}
CONSTANT_LR: dict[str, Any] = {"learning_rate": 1e-3, "warmup_steps": 0, "lr_restart_period": 10**9}
FULL_TEACHER_FORCING: dict[str, Any] = {"tf_hold_steps": 10**9}
PLAIN_MSE: dict[str, Any] = {"mel_loss": "mse", "perceptual_weight": 0.0, "style_weight": 0.0}
FIXED_GATE: dict[str, Any] = {"stop_gate": "fixed", "stop_threshold": 0.5, "gate_pos_weight": 1.0}
BASELINE: dict[str, Any] = {"ga_kind": "off", **PUBLISHED_DROPOUT, **CONSTANT_LR, **FULL_TEACHER_FORCING,
                            **PLAIN_MSE, **FIXED_GATE, "monotonic_weight": 0.0, "phases": False,
                            "controller": False}

# Each fix switched off alone, from "all fixes on" (the trainer's defaults plus phases).
ABLATIONS: dict[str, dict[str, Any]] = {
    "guided_attention": {"ga_kind": "off"},
    "ga_sigma_schedule": {"ga_sigma_end": 0.4},  # σ stays at its start value
    "dropout": PUBLISHED_DROPOUT,
    "lr_schedule": CONSTANT_LR,
    "adaptive_gate": FIXED_GATE,  # fixed inference threshold and no positive-class weight
    "scheduled_sampling": FULL_TEACHER_FORCING,
    "spectral_loss": {"mel_loss": "mse"},
    "monotonic_loss": {"monotonic_weight": 0.0},
    "phases": {"phases": False},
    "controller": {"controller": False},
}
KEPT = ("tf_diagonality", "fr_diagonality", "tf_gate_balanced_accuracy", "fr_stop_error", "fr_hit_max_rate",
        "fr_run_on_rate", "fr_early_stop_rate", "val_mel_postnet_l1", "fr_mcd")  # what a run's history keeps


@dataclass
class RunSpec:
    """One training run of a bench: a name, the config overrides on top of "all fixes on", a seed."""

    name: str
    overrides: dict[str, Any]
    seed: int
    preset: str = "tiny"
    steps: int = 150
    every: int = 25
    device: str = "cpu"
    threads: int = 1
    corpus: str = ""
    workdir: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class RunRecord(TypedDict):
    """What ``execute`` returns for one run: steps and seconds to diagonality 0.85, the first and last validation."""

    name: str
    seed: int
    steps: int
    steps_to_tf_diag: int | None  # None: not within the run
    wall_s_to_tf_diag: float | None
    steps_to_fr_diag: int | None
    wall_s_to_fr_diag: float | None
    first: dict[str, float]  # the first validation's figures (KEPT), with its step
    final: dict[str, float]  # the last validation's
    wall_s: float
    median_sec_per_step: float | None
    controller_actions: list[str]  # "STEP: action" of each quality-controller intervention
    history: list[dict[str, float]]  # every validation: step, wall_s and the KEPT figures


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options every alignment bench's runs share: corpus size and language, preset, device, jobs."""
    from trainer.presets import PRESETS

    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--lang", default="en", choices=["en", "ru"], help="language of the eSpeak corpus")
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: 2 on cpu, 1 on cuda)")


def jobs_of(args: argparse.Namespace) -> int:
    """Return the runs at once: ``--jobs``, else two one-thread runs on the CPU and one on CUDA."""
    return args.jobs or (2 if args.device == "cpu" else 1)


def run_specs(args: argparse.Namespace, corpus: Path, runs: list[tuple[str, dict[str, Any], int]]) -> list[RunSpec]:
    """Return the RunSpec of each (name, overrides, seed) at the command line's preset, length and device."""
    threads = 1 if jobs_of(args) > 1 else 0
    return [RunSpec(name, overrides, seed, args.preset, args.steps, args.every, args.device, threads=threads,
                    corpus=str(corpus), workdir=str(args.workdir / "runs")) for name, overrides, seed in runs]


def run_setup(args: argparse.Namespace) -> dict[str, Any]:
    """Return the record fields that say what every run of an alignment bench was: preset, device, length, corpus."""
    return {"preset": args.preset, "device": args.device, "steps": args.steps, "every": args.every,
            "utterances": args.utterances, "lang": args.lang, "text_frontend": text_frontend_of(args.preset)}


def all_fixes_config(preset_name: str, steps: int, every: int, seed: int, device: str, threads: int):
    """Return the "all fixes on" TrainConfig of a bench run: the preset's defaults with phases on.

    The preset's schedules stay as a user gets them; the phases scale to ``steps`` by design.
    """
    from trainer.config import preset

    return preset(preset_name).replace(max_steps=steps, val_interval=every, checkpoint_interval=steps, seed=seed,
                                       device=device, torch_threads=threads, plots=False, phases=True,
                                       early_stop=False, fr_asr="off")  # alignment benches: no recogniser


def text_frontend_of(preset_name: str) -> str:
    """Return what the bench's runs read (the preset's text frontend; no bench changes it)."""
    from trainer.config import preset

    return preset(preset_name).model.text_frontend


WARMUP_STEPS = 2  # training steps a speed figure leaves out: the first ones also allocate


def timed_steps(run_dir: Path, warmup: int = WARMUP_STEPS) -> list[dict[str, Any]]:
    """Return the training-step records of ``run_dir``'s metrics.jsonl after the first ``warmup`` steps."""
    from trainer.fileio import read_jsonl

    return [r for _, r in read_jsonl(run_dir / "metrics.jsonl") if r.get("kind") == "train" and r["step"] > warmup]


def median_sec_per_step(run_dir: Path, warmup: int = 1) -> float | None:
    """Return the median seconds per training step of ``run_dir`` after ``warmup`` steps (3 decimals; None: none)."""
    seconds = [r["sec_per_step"] for r in timed_steps(run_dir, warmup)]
    return round(statistics.median(seconds), 3) if seconds else None


def frames_per_second(timed: list[dict[str, Any]]) -> float:
    """Return the mel frames trained per second of step time over ``timed`` step records."""
    return sum(r["frames"] for r in timed) / sum(r["sec_per_step"] for r in timed)


def first_step(history: list[dict[str, Any]], key: str, target: float = TARGET) -> dict[str, Any] | None:
    """Return the first validation record whose ``key`` is at least ``target`` (None: never)."""
    return next((h for h in history if h.get(key) is not None and h[key] >= target), None)


def controller_actions(run_dir: Path) -> list[str]:
    """Return "STEP: action" of each quality-controller record of ``run_dir`` that did something."""
    from trainer.fileio import read_jsonl

    return [f"{r['step']}: {r['action']}" for _, r in read_jsonl(run_dir / "metrics.jsonl")
            if r["kind"] == "quality" and not str(r["action"]).startswith("none")]


def execute(spec: RunSpec) -> RunRecord:
    """Train one bench run and return its figures (steps and seconds to the target, final metrics, history)."""
    os.environ.setdefault("OMP_NUM_THREADS", str(spec.threads))
    from trainer.training.loop import train

    config = all_fixes_config(spec.preset, spec.steps, spec.every, spec.seed, spec.device, spec.threads)
    config = config.replace(**spec.overrides)
    run_dir = Path(spec.workdir) / f"{spec.name}-seed{spec.seed}-{int(time.time() * 1000)}"
    history: list[dict[str, Any]] = []
    started = time.perf_counter()

    def record(step: int, metrics: dict[str, float]) -> bool:
        history.append({"step": step, "wall_s": round(time.perf_counter() - started, 1),
                        **{k: round(float(metrics[k]), 4) for k in KEPT if k in metrics}})
        return False

    train(config, spec.corpus, run_dir, callback=record, show_progress=False)
    tf_hit, fr_hit = first_step(history, "tf_diagonality"), first_step(history, "fr_diagonality")
    return {
        "name": spec.name, "seed": spec.seed, "steps": spec.steps,
        "steps_to_tf_diag": tf_hit["step"] if tf_hit else None,
        "wall_s_to_tf_diag": tf_hit["wall_s"] if tf_hit else None,
        "steps_to_fr_diag": fr_hit["step"] if fr_hit else None,
        "wall_s_to_fr_diag": fr_hit["wall_s"] if fr_hit else None,
        "first": {k: v for k, v in history[0].items() if k != "wall_s"},
        "final": {k: v for k, v in history[-1].items() if k != "wall_s"},
        "wall_s": round(time.perf_counter() - started, 1),
        "median_sec_per_step": median_sec_per_step(run_dir),
        "controller_actions": controller_actions(run_dir),
        "history": history,
    }


def run_all(specs: list[RunSpec], jobs: int) -> list[RunRecord]:
    """Execute ``specs`` ``jobs`` at a time (fresh processes) and return their figures in order."""
    if jobs <= 1:
        return [execute(spec) for spec in specs]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        return list(pool.map(execute, specs))


def summarise(runs: list[RunRecord]) -> dict[str, Spread]:
    """Return median and spread over seeds of each figure of ``runs`` (one configuration)."""
    return {
        "steps_to_tf_diag": spread([r["steps_to_tf_diag"] for r in runs]),
        "wall_s_to_tf_diag": spread([r["wall_s_to_tf_diag"] for r in runs]),
        "steps_to_fr_diag": spread([r["steps_to_fr_diag"] for r in runs]),
        "wall_s_to_fr_diag": spread([r["wall_s_to_fr_diag"] for r in runs]),
        **{f"final_{k}": spread([r["final"].get(k) for r in runs])
           for k in ("tf_diagonality", "fr_diagonality", "tf_gate_balanced_accuracy", "fr_stop_error",
                     "fr_hit_max_rate", "val_mel_postnet_l1", "fr_mcd")},
        "first_tf_diagonality": spread([r["first"].get("tf_diagonality") for r in runs]),
        "first_tf_gate_balanced_accuracy": spread([r["first"].get("tf_gate_balanced_accuracy") for r in runs]),
        "median_sec_per_step": spread([r["median_sec_per_step"] for r in runs]),
    }
