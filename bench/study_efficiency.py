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
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report import emit, machine  # bench/report.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
BASE_CHECKPOINT = ROOT / "tests" / "data" / "tiny-aligned.pt"
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


def bounded_int(low: int):
    """Return an argparse type accepting whole numbers >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def ensure_voice_corpus(workdir: Path) -> Path:
    """Return the second voice's 60-utterance eSpeak corpus, made on first use."""
    from trainer.corpora.make import SECOND_VOICES, make_corpus

    voice = SECOND_VOICES["en"]
    corpus = workdir / f"voice-{voice}-{VOICE_UTTERANCES}-seed{VOICE_SEED}"
    if not (corpus / "metadata.csv").is_file():
        make_corpus(corpus, lang="en", utterances=VOICE_UTTERANCES, seed=VOICE_SEED, voice=voice)
    return corpus


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


def warm_feature_cache(space_path: Path, corpus: Path) -> None:
    """Compute the corpus's mel features once, so the two studies do not both compute them in their first trial."""
    from trainer.training.loop import load_data
    from tuner.space.load import load_space

    space = load_space(space_path)
    load_data(space.build_config(space.defaults_or_low()), corpus, False)


def run_studies(spaces: dict[str, Path], corpus: Path, trials: int) -> dict[str, float]:
    """Run the studies of ``spaces`` (variant -> space file) side by side; return each one's wall seconds.

    Each study lives in the home beside its space file (SQLite storage, run folders, log).
    """
    env = dict(os.environ)
    env.pop("SMART_TUNER_STORAGE", None)  # each study's own SQLite file in its home
    env.pop("SMART_TUNER_FAULT", None)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    started: dict[str, float] = {}
    walls: dict[str, float] = {}
    processes: dict[str, subprocess.Popen] = {}
    handles = []
    try:
        for variant, space in spaces.items():
            home = space.parent / "home"
            command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--study", STUDY,
                       "--data", str(corpus), "--warm-start", str(BASE_CHECKPOINT), "--home", str(home),
                       "--trials", str(trials), "--no-mlflow", "--quiet"]
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


def trial_steps(trial, max_steps: int) -> int:
    """Return the optimiser steps a trial trained: the budget when complete, else its last reported step."""
    from optuna.trial import TrialState

    if trial.state == TrialState.COMPLETE:
        return max_steps
    if trial.intermediate_values:
        return max(trial.intermediate_values)
    return int(trial.user_attrs.get("last_step", 0))


def best_value(trials: list) -> float | None:
    """Return the lowest objective among the complete trials (None when none completed)."""
    from optuna.trial import TrialState

    values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return min(values) if values else None


def steps_to_reach(trials: list, target: float | None, max_steps: int) -> int | None:
    """Return the trial-steps spent, in trial order, up to the first complete trial with objective <= ``target``."""
    from optuna.trial import TrialState

    if target is None:
        return None
    spent = 0
    for trial in trials:
        spent += trial_steps(trial, max_steps)
        if trial.state == TrialState.COMPLETE and trial.value is not None and trial.value <= target:
            return spent
    return None


def study_record(trials: list, target: float | None, max_steps: int, wall: float | None) -> dict[str, Any]:
    """Return one study's figures (the keys of ``pruned``/``unpruned`` in a repetition)."""
    from optuna.trial import TrialState

    failed = [t for t in trials if t.state == TrialState.FAIL]
    for trial in failed:
        print(f"study_efficiency: trial {trial.number} failed: {trial.user_attrs.get('fail_reason', '')}",
              file=sys.stderr)
    best = best_value(trials)
    return {"best": None if best is None else round(best, 5),
            "trial_steps_total": sum(trial_steps(t, max_steps) for t in trials),
            "trial_steps_to_unpruned_best": steps_to_reach(trials, target, max_steps),
            "complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "wall_s": None if wall is None else round(wall, 1)}


def median_of(reps: list[dict[str, Any]], variant: str, key: str) -> float | None:
    """Return the median of ``rep[variant][key]`` over repetitions, leaving out None (None when all are)."""
    values = [rep[variant][key] for rep in reps if rep[variant][key] is not None]
    return round(statistics.median(values), 5) if values else None


def run_rep(rep: int, args: argparse.Namespace, corpus: Path, folder: Path) -> dict[str, Any]:
    """Run one repetition (both studies, sampler seed ``rep``); return its record."""
    spaces = {variant: write_space(folder / f"rep{rep}-{variant}", rep, variant, args.trials, args.max_steps,
                                   args.device) for variant in VARIANTS}
    if rep == 1:
        warm_feature_cache(spaces["unpruned"], corpus)
    print(f"study_efficiency: repetition {rep}: {args.trials} trials x {args.max_steps} steps, pruning on and off ...",
          file=sys.stderr, flush=True)
    walls = run_studies(spaces, corpus, args.trials)
    trials = {variant: load_trials(space) for variant, space in spaces.items()}
    target = best_value(trials["unpruned"])
    record = {"rep": rep, "sampler_seed": rep,
              **{variant: study_record(trials[variant], target, args.max_steps, walls.get(variant))
                 for variant in VARIANTS}}
    print(f"study_efficiency:   pruned {record['pruned']}", file=sys.stderr)
    print(f"study_efficiency:   unpruned {record['unpruned']}", file=sys.stderr, flush=True)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=bounded_int(1), default=6, help="trials per study (default 6)")
    parser.add_argument("--max-steps", type=bounded_int(4), default=20,
                        help="steps per trial (default 20; a validation every max_steps // 4)")
    parser.add_argument("--reps", type=bounded_int(1), default=3, help="repetitions (default 3)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible")
    if not BASE_CHECKPOINT.is_file():
        parser.error(f"base checkpoint {BASE_CHECKPOINT} not found")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["SMART_TUNER_CACHE"] = str(args.workdir / "feature-cache")  # this process and the studies
    corpus = ensure_voice_corpus(args.workdir)
    folder = args.workdir / "study_efficiency" / time.strftime("%Y%m%d-%H%M%S")
    reps = [run_rep(rep, args, corpus, folder) for rep in range(1, args.reps + 1)]
    summary = {f"median_{name}_{variant}": median_of(reps, variant, key)
               for name, key in (("best", "best"), ("steps_to_unpruned_best", "trial_steps_to_unpruned_best"),
                                 ("trial_steps_total", "trial_steps_total"))
               for variant in VARIANTS}
    result = {
        "bench": "study_efficiency", "trials": args.trials, "max_steps": args.max_steps, "reps": reps,
        "summary": summary, "machine": machine(args.device),
        "command": "python bench/study_efficiency.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
