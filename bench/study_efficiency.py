"""Study efficiency: the same study with pruning on and off. Prints JSON; appends it to bench/results.jsonl.

The same study (same sampler seed, same trial count) runs twice: with the pruner and the
quality gates, and with no pruning at all; reported are the trial-steps each spends to reach
the unpruned study's best objective, and the best objective each reaches. Each repetition
uses another sampler seed (rep 1 seed 1, ...); its two studies run side by side as two
``tuner run-study`` processes with one thread each (``OMP_NUM_THREADS=1``, ``torch_threads: 1``).

    python bench/study_efficiency.py [--trials 6] [--max-steps 20] [--reps 3] [--device cpu]
        [--workdir studies/bench] [--results bench/results.jsonl]

The study fine-tunes, as the default space does: every trial warm-starts from the shipped
``tests/data/tiny-aligned.pt`` (the tiny preset trained on an English eSpeak corpus of seed 0)
and trains on a 60-utterance corpus of the second voice (``trainer.corpora.make.SECOND_VOICES["en"]``,
sentences of seed 1, made once under the work folder). The space is ``search_spaces/default.yaml``
with a short budget, written into the work folder:

- parameters as in default.yaml: learning rate 1e-6..5e-5 (log), batch size 8..16, dropout
  0.05..0.15 (prenet), guided-attention weight 1..5; the defaults are trial 0 (both studies);
- objective val_mel_postnet_l1 (minimised; a trial's value is its best validation);
- ``--max-steps`` steps per trial, a validation every max_steps // 4 steps (4 validations when
  it divides), learning-rate warm-up max_steps // 8 steps (the tiny preset's 50 would outlast
  the budget); validation on 4 held-out utterances, 2 of them free-running; no per-validation
  pictures, no samples, no MLflow;
- TPE sampler, 3 start-up trials, seed = the repetition's number;
- pruning on: Optuna's median pruner, 2 complete trials before it prunes, from the first
  validation on (n_warmup_steps = the validation interval), without patience: Optuna's
  PatientPruner (default.yaml's ``patience: 2``) needs patience + 2 validations before it can
  act, which with 4 validations is the last one, where nothing is left to save. Plus
  default.yaml's two quality gates at the same fractions of the budget (diagonality >= 0.5 from
  a third of it, gate balanced accuracy >= 0.6 from 70 %);
- pruning off: pruner ``none`` and no gates: every trial trains its full budget.

Per study: the best objective, trials complete and pruned, the trial-steps spent in total (each
trial's steps: the budget when complete, else its last reported step), the trial-steps spent
in trial order up to and including the first complete trial whose objective is <= the
unpruned study's best (for the unpruned study, up to its best trial; None when never
reached), and the wall time. The summary takes medians over repetitions (of those that
reached the target, for the steps to it). Run folders and logs stay under
``WORKDIR/study_efficiency/``; the feature cache under ``WORKDIR/feature-cache``.

Cost: a trial costs about 1 s of one core per step (batch 12), 1 s per validation and 6-8 s of
process start, imports, media and exit; the two studies of a repetition take a core each, so a
repetition lasts about as long as its unpruned study. The defaults (6 trials x 20 steps, 3
repetitions) take about 10 minutes on 2 idle cores, about 14 beside two other busy processes.
Fine-tuning at these learning rates first raises the validation loss (measured at 5e-5: 1.87
before, 1.96 at step 10) and beats the base only after 20-30 steps, so a longer budget
(``--max-steps 40 --trials 8``: about 25 minutes) gives an objective with more room between trials.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.common import BASE_CHECKPOINT, ROOT, bounded_int, made_once, output_arguments, say
from harness.runner import Bench
from harness.studies import (
    child_env,
    run_study_command,
    setup_study_bench,
    steps_to_reach,
    stop_text,
    warm_feature_cache,
)
from sections.study_efficiency import Repetition, StudyEfficiencyRecord, StudyFigures

STUDY = "efficiency"
VOICE_UTTERANCES = 60
VOICE_SEED = 1  # the base's corpus used the sentence generator's seed 0
VARIANTS = ("pruned", "unpruned")
STUDY_TIMEOUT_S = 3600  # a study process is killed after this long (something is wrong)

SPACE = """\
# Written by bench/study_efficiency.py: search_spaces/default.yaml with a short budget ({variant}).
description: study efficiency bench, repetition {rep}, {variant}
preset: tiny
study:
  name: {study}
  objective: val_mel_postnet_l1
  fine_tune: true
  n_trials: {trials}
  max_steps: {max_steps}
  sampler: {{name: tpe, n_startup_trials: 3, seed: {seed}}}
  pruner: {pruner}
  gates: {gates}
  samples: 0
fixed:
  lr_profile: finetune
  val_interval: {val_interval}
  warmup_steps: {warmup_steps}
  val_size: 4
  fr_utterances: 2
  plots: false
  torch_threads: 1
  device: {device}
params:
  learning_rate: {{type: float, low: 1.0e-6, high: 5.0e-5, log: true, default: 1.0e-5}}
  batch_size: {{type: int, low: 8, high: 16, default: 12}}
  dropout: {{type: float, low: 0.05, high: 0.15, default: 0.08, targets: [prenet_dropout]}}
  ga_weight: {{type: float, low: 1.0, high: 5.0, default: 2.5}}
"""
PRUNED_GATES = ("[{metric: tf_diagonality, min: 0.5, after_fraction: 0.33}, "
                "{metric: tf_gate_balanced_accuracy, min: 0.6, after_fraction: 0.7}]")


def ensure_voice_corpus(workdir: Path) -> Path:
    """Return the second voice's 60-utterance eSpeak corpus, made on first use."""
    from trainer.corpora.make import SECOND_VOICES

    voice = SECOND_VOICES["en"]
    return made_once(workdir / f"voice-{voice}-{VOICE_UTTERANCES}-seed{VOICE_SEED}", lang="en",
                     utterances=VOICE_UTTERANCES, seed=VOICE_SEED, voice=voice)


def write_space(folder: Path, rep: int, variant: str, trials: int, max_steps: int, device: str) -> Path:
    """Write the space of one study (``variant`` pruned or unpruned, sampler seed ``rep``); return its path."""
    pruned = variant == "pruned"
    val_interval = max(1, max_steps // 4)
    pruner = (f"{{name: median, n_startup_trials: 2, n_warmup_steps: {val_interval}}}" if pruned
              else "{name: none}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(SPACE.format(variant=variant, rep=rep, study=STUDY, trials=trials, max_steps=max_steps, seed=rep,
                                 pruner=pruner, gates=PRUNED_GATES if pruned else "[]", val_interval=val_interval,
                                 warmup_steps=max(1, max_steps // 8), device=device), encoding="utf-8")
    return path


def run_studies(spaces: dict[str, Path], corpus: Path, trials: int) -> dict[str, float]:
    """Run the studies of ``spaces`` (variant -> space file) side by side; return each one's wall seconds.

    Each study lives in the home beside its space file (SQLite storage, run folders, log).
    """
    # each study's own SQLite file in its home
    env = child_env(["SMART_TUNER_STORAGE", "SMART_TUNER_FAULT"], OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    started: dict[str, float] = {}
    walls: dict[str, float] = {}
    processes: dict[str, subprocess.Popen] = {}
    handles = []
    try:
        for variant, space in spaces.items():
            home = space.parent / "home"
            command = run_study_command(space, corpus, home, trials, study=STUDY, warm_start=BASE_CHECKPOINT)
            handle = (space.parent / "run-study.log").open("wb")
            handles.append(handle)
            started[variant] = time.perf_counter()
            processes[variant] = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.perf_counter() + STUDY_TIMEOUT_S
        pending = dict(processes)
        while pending:  # poll, so each study's wall time ends when it does
            for variant, process in list(pending.items()):
                if process.poll() is not None:
                    walls[variant] = time.perf_counter() - started[variant]
                    del pending[variant]
                    if process.returncode != 0:
                        print(f"study_efficiency: the {variant} study exited with {process.returncode}; see "
                              f"{spaces[variant].parent / 'run-study.log'}", file=sys.stderr)
            if pending and time.perf_counter() > deadline:
                raise RuntimeError(f"studies still running after {STUDY_TIMEOUT_S} s: {', '.join(pending)}")
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        for handle in handles:
            handle.close()
    return walls


def load_trials(space: Path) -> list:
    """Return the trials of the study whose home is beside ``space``, in trial-number order."""
    import optuna

    from tuner.study.storage import open_storage

    storage = open_storage(f"sqlite:///{space.parent / 'home' / 'optuna.db'}")
    study = optuna.load_study(study_name=STUDY, storage=storage)
    return sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)


def trial_steps(trial: Any, max_steps: int) -> int:
    """Return the optimiser steps a trial trained: the budget when complete, else its last reported step."""
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return max_steps
    if trial.intermediate_values:
        return max(trial.intermediate_values)
    return int(trial.user_attrs.get("last_step", 0))


def trial_records(trials: list, max_steps: int) -> list[dict[str, Any]]:
    """Return each trial's state (name), objective and steps trained, in trial order (harness.studies records)."""
    return [{"state": t.state.name, "value": t.value, "steps": trial_steps(t, max_steps)} for t in trials]


def best_value(records: list[dict[str, Any]]) -> float | None:
    """Return the lowest objective among the complete trials (None when none completed)."""
    values = [t["value"] for t in records if t["state"] == "COMPLETE" and t["value"] is not None]
    return min(values) if values else None


def study_record(trials: list, target: float | None, max_steps: int, wall: float | None) -> StudyFigures:
    """Return one study's figures (the keys of ``pruned``/``unpruned`` in a repetition)."""
    records = trial_records(trials, max_steps)
    for trial in trials:
        if trial.state.name == "FAIL":
            print(f"study_efficiency: trial {trial.number} failed: {stop_text(trial)}",
                  file=sys.stderr)
    best = best_value(records)
    return {"best": None if best is None else round(best, 5),
            "trial_steps_total": sum(t["steps"] for t in records),
            "trial_steps_to_unpruned_best": steps_to_reach(records, target),
            "complete": sum(t["state"] == "COMPLETE" for t in records),
            "pruned": sum(t["state"] == "PRUNED" for t in records),
            "wall_s": None if wall is None else round(wall, 1)}


def median_of(reps: list[dict[str, Any]], variant: str, key: str) -> float | None:
    """Return the median of ``rep[variant][key]`` over repetitions, leaving out None (None when all are)."""
    values = [rep[variant][key] for rep in reps if rep[variant][key] is not None]
    return round(statistics.median(values), 5) if values else None


def run_rep(rep: int, args: argparse.Namespace, corpus: Path, folder: Path) -> Repetition:
    """Run one repetition (both studies, sampler seed ``rep``); return its record."""
    spaces = {variant: write_space(folder / f"rep{rep}-{variant}", rep, variant, args.trials, args.max_steps,
                                   args.device) for variant in VARIANTS}
    if rep == 1:
        warm_feature_cache(spaces["unpruned"], corpus)
    say("study_efficiency", f"repetition {rep}: {args.trials} trials x {args.max_steps} steps, pruning on and off ...")
    walls = run_studies(spaces, corpus, args.trials)
    trials = {variant: load_trials(space) for variant, space in spaces.items()}
    target = best_value(trial_records(trials["unpruned"], args.max_steps))
    record = {"rep": rep, "sampler_seed": rep,
              **{variant: study_record(trials[variant], target, args.max_steps, walls.get(variant))
                 for variant in VARIANTS}}
    say("study_efficiency", f"  pruned {record['pruned']}")
    say("study_efficiency", f"  unpruned {record['unpruned']}")
    return record


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=bounded_int(1), default=6, help="trials per study (default 6)")
    parser.add_argument("--max-steps", type=bounded_int(4), default=20,
                        help="steps per trial (default 20; a validation every max_steps // 4)")
    parser.add_argument("--reps", type=bounded_int(1), default=3, help="repetitions (default 3)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> StudyEfficiencyRecord:
    setup_study_bench(args, parser, needs_base=True)
    corpus = ensure_voice_corpus(args.workdir)
    folder = args.workdir / "study_efficiency" / time.strftime("%Y%m%d-%H%M%S")
    reps = [run_rep(rep, args, corpus, folder) for rep in range(1, args.reps + 1)]
    summary = {f"median_{name}_{variant}": median_of(reps, variant, key)
               for name, key in (("best", "best"), ("steps_to_unpruned_best", "trial_steps_to_unpruned_best"),
                                 ("trial_steps_total", "trial_steps_total"))
               for variant in VARIANTS}
    return {"trials": args.trials, "max_steps": args.max_steps, "reps": reps, "summary": summary}


BENCH = Bench("study_efficiency", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
