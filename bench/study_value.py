"""Study value: does tuning the fine-tuning space beat its defaults, and which pruner gets there cheapest?

Prints JSON; appends it to bench/results.jsonl; draws best value against trial-steps as a PNG.

    python bench/study_value.py [--trials 12] [--max-steps 150] [--seeds 3]
        [--pruners none,median,successive_halving,hyperband] [--jobs 2] [--sampler-seed 1]
        [--device cpu] [--workdir studies/bench] [--results bench/results.jsonl] [--plot docs/study_value.png]
        [--reuse studies/bench/study_value/STAMP]

The task is the one ``search_spaces/default.yaml`` is written for: a base checkpoint trained on
one eSpeak voice (the shipped ``tests/data/tiny-aligned.pt``: the tiny preset trained 400 steps
on 300 en-us utterances of sentence seed 0) fine-tuned on a voice it never heard (``--voice``,
default ``en-us+m3`` with varied rate, pitch and intonation: ``--utterances`` sentences of seed
1). Every trial and every retraining is scored the way the space ranks trials: ``fr_mcd``
(free-running MCD-DTW against the recordings, dB, minimised) at the trial's best validation.

The space is default.yaml itself, read when the bench starts, with only these changes: the
budget (``--max-steps``; the validation interval stays the space's 25 steps unless the budget
is under four of them), the sampler seeded (``--sampler-seed``), no per-trial samples or
pictures, one torch thread per process, and the pruner of each arm. Settings the space gives
in steps (the median pruner's ``n_warmup_steps``, a gate's ``after_step``, a pruner's
``min_resource``/``max_resource``) are scaled by ``max_steps / 300`` (300 is the space's own
budget), so a trial is judged at the same fraction of its budget as in the shipped space.

a. **The defaults** (the space's parameter defaults: trial 0 of every study) trained with
   ``--seeds`` seeds (1, 2, ...; every study trial trains with the preset's seed 1234, so these
   are fresh), their best checkpoint scored on held-out sentences no trial saw
   (``--heldout`` utterances of sentence seed 2, same voice; a sentence that also occurs in
   the fine-tuning corpus is left out): mean, standard deviation and range over seeds of
   held-out ``fr_mcd``, ``fr_stop_error`` and ``fr_diagonality``.
b. **Pruners.** The same study (same sampler seed, ``--trials`` trials) once per arm:
   ``none`` (no pruner and no quality gates: every trial trains its whole budget),
   ``median`` (default.yaml's: median, 3 start-up trials, warm-up a third of the budget,
   patience 2), ``successive_halving`` and ``hyperband`` (as the tuner builds them: minimum
   resource one validation interval, Optuna's reduction factors 4 and 3; Hyperband's maximum
   resource the budget). The pruned arms keep the space's quality gates. Per arm: best value
   against cumulative trial-steps (trial order), trial-steps in total, trial-steps up to the
   first complete trial at or below the unpruned study's best (and that as a share of the
   unpruned study's total; goal <= 35 %), complete / pruned / failed counts.
c. **The winner** (the best complete trial of the study run with default.yaml's own pruner,
   i.e. what ``tuner run-study --space default`` hands a user) retrained with the same fresh
   seeds as (a) and scored on the same held-out sentences. It beats the defaults "beyond the
   seed spread" when its worst seed is better than the defaults' best seed; the difference of
   means and the larger of the two seed ranges are reported beside that verdict.

Also: the Spearman rank correlation (average ranks for ties) between each complete trial's
objective at the first validation at or after a third of its budget and its value at the end
(the trial's value: its best validation; and its last validation), per arm with the number of
trials it rests on, and for the unpruned arm at every validation step; and the base checkpoint
(no fine-tuning) scored on the held-out sentences, for scale.

Work runs ``--jobs`` at a time, one torch thread each (on 2 cores two one-thread processes beat
one two-thread process): each study is one ``tuner run-study`` process, each retraining one
spawned process; the winner's retrainings start when the study they come from ends. Studies,
run folders and logs stay under ``WORKDIR/study_value/<time>/``, corpora under ``WORKDIR``, the
feature cache under ``WORKDIR/feature-cache``.

Cost on a 2-core CPU (tiny preset, measured in smoke runs with two processes at a time): a
trial of 50 steps with 5 validations (8 utterances teacher-forced and free-running) trains in
about 60 s, plus 3-4 s to start and end its process, so a complete 150-step trial takes about
3 minutes and the unpruned study of 12 such trials about 40 minutes. The full run (4 arms x
12 trials x 150 steps, 2 x 3 retrainings) is about 130 core-minutes, 65-80 minutes of wall time
on 2 otherwise idle cores (the unpruned study is the longest single job); other load on the
machine stretches it (smoke trials ran up to 2.5x slower beside another busy process). Smoke
runs: ``--trials 3 --max-steps 50 --seeds 2 --pruners none,median,successive_halving
--utterances 40 --heldout 8`` about 10 minutes, ``--trials 3 --max-steps 20 --seeds 1
--pruners hyperband,none --utterances 40 --heldout 8`` about 2. ``--reuse`` continues an
interrupted run in its work folder: studies already holding their trials are read, not rerun.
Run a long bench from a checkout nobody edits meanwhile (a ``git worktree``): its processes
import the package lazily, and a module changed half-way mixes two versions in one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from report import emit, machine  # bench/report.py, beside this script
from study_efficiency import bounded_int  # bench/study_efficiency.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
BASE_CHECKPOINT = ROOT / "tests" / "data" / "tiny-aligned.pt"
DEFAULT_SPACE = ROOT / "search_spaces" / "default.yaml"
OBJECTIVE = "fr_mcd"
CORPUS_SEED = 1  # the base's corpus used the sentence generator's seed 0
HELDOUT_SEED = 2  # sentences of another seed: none of them is in the fine-tuning corpus (checked)
SCORING_SEED = 0  # prenet dropout stays on at inference: every checkpoint is scored with the same draws
GOAL_SHARE = 0.35  # the goal: the pruned study reaches the unpruned best within 35 % of its trial-steps
STUDY_TIMEOUT_S = 6 * 3600  # a study process is killed after this long (something is wrong)
HELDOUT_KEYS = ("fr_mcd", "fr_stop_error", "fr_diagonality", "fr_hit_max_rate", "fr_length_ratio",
                "fr_out_of_range")
# The arms besides default.yaml's own pruner, which is read from the file (and replaces its
# namesake here). Step settings are at the space's 300-step budget and scaled with it.
ARM_PRUNERS: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "median": {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 100, "patience": 2},
    "successive_halving": {"name": "successive_halving"},  # min_resource: the validation interval (the tuner's)
    "hyperband": {"name": "hyperband"},  # min_resource: the validation interval; max_resource: the budget
}
STEP_KEYS = ("n_warmup_steps", "min_resource", "max_resource")  # pruner settings counted in steps


# ------------------------------------------------------------------ pure helpers (tested)


def average_ranks(values: list[float]) -> list[float]:
    """Return the 1-based ranks of ``values`` (n,), ties sharing the average of the ranks they span."""
    array = np.asarray(values, dtype=float)
    order = np.argsort(array, kind="stable")
    ranks = np.empty(len(array), dtype=float)
    position = 0
    while position < len(order):
        end = position
        while end + 1 < len(order) and array[order[end + 1]] == array[order[position]]:
            end += 1
        ranks[order[position:end + 1]] = (position + end) / 2 + 1  # mean of ranks position+1 .. end+1
        position = end + 1
    return ranks.tolist()


def spearman(x: list[float], y: list[float]) -> float | None:
    """Return Spearman's rank correlation of paired ``x`` and ``y`` (pairs with a non-finite value dropped).

    The Pearson correlation of the average ranks. None with fewer than 3 pairs or when one
    side is constant (no ranking to agree with).
    """
    pairs = [(a, b) for a, b in zip(x, y, strict=True) if math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3:
        return None
    rx = np.asarray(average_ranks([a for a, _ in pairs]))
    ry = np.asarray(average_ranks([b for _, b in pairs]))
    dx, dy = rx - rx.mean(), ry - ry.mean()
    scale = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return None if scale == 0 else float((dx * dy).sum()) / scale


def early_point(values: dict[int, float], max_steps: int) -> tuple[int, float] | None:
    """Return (step, objective) of the first validation at or after a third of ``max_steps`` (None: none)."""
    steps = sorted(s for s in values if 3 * s >= max_steps)  # 3 * s >= max_steps: exact for any budget
    return (steps[0], values[steps[0]]) if steps else None


def rank_agreement(trials: list[dict[str, Any]], max_steps: int) -> dict[str, Any]:
    """Return how far each complete trial's early objective ranks the trials as their end does.

    ``trials`` are trial records (``trial_record``). Keys: ``step`` (the validation at or after
    a third of the budget, of the first trial that had one), ``n`` (complete trials with a value
    there and at the end), ``rho_value`` (Spearman, early objective vs the trial's value, its
    best validation), ``rho_last`` (vs its last validation), ``by_step`` ({step: rho against
    the value} for every validation step all of them reported).
    """
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None and t["values"]]
    early, value, last = [], [], []
    step = None
    for trial in complete:
        curve = {s: v for s, v in trial["values"]}
        point = early_point(curve, max_steps)
        if point is None:
            continue
        step = point[0] if step is None else step
        early.append(point[1])
        value.append(trial["value"])
        last.append(curve[max(curve)])
    shared = sorted(set.intersection(*(set(s for s, _ in t["values"]) for t in complete))) if complete else []
    by_step = {}
    for s in shared:
        rho = spearman([dict(t["values"])[s] for t in complete], [t["value"] for t in complete])
        by_step[str(s)] = None if rho is None else round(rho, 3)
    return {"step": step, "n": len(early), "rho_value": _rounded(spearman(early, value), 3),
            "rho_last": _rounded(spearman(early, last), 3), "by_step": by_step}


def best_curve(trials: list[dict[str, Any]]) -> list[list[float | None]]:
    """Return [cumulative trial-steps, best complete value so far (None before the first)] after each trial."""
    spent, best, curve = 0, None, []
    for trial in trials:
        spent += trial["steps"]
        if trial["state"] == "COMPLETE" and trial["value"] is not None and math.isfinite(trial["value"]):
            best = trial["value"] if best is None else min(best, trial["value"])
        curve.append([spent, best])
    return curve


def steps_to_reach(trials: list[dict[str, Any]], target: float | None) -> int | None:
    """Return the trial-steps spent, in trial order, up to the first complete trial with value <= ``target``."""
    if target is None:
        return None
    spent = 0
    for trial in trials:
        spent += trial["steps"]
        if trial["state"] == "COMPLETE" and trial["value"] is not None and trial["value"] <= target:
            return spent
    return None


def seed_stats(values: list[float]) -> dict[str, Any]:
    """Return {"mean", "std" (sample, 0 for one value), "min", "max", "n"} of per-seed figures (Nones dropped)."""
    present = [v for v in values if v is not None and math.isfinite(v)]
    if not present:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": round(statistics.fmean(present), 4),
            "std": round(statistics.stdev(present), 4) if len(present) > 1 else 0.0,
            "min": round(min(present), 4), "max": round(max(present), 4), "n": len(present)}


def beats_defaults(winner: list[float], defaults: list[float], winner_is_defaults: bool) -> tuple[bool | None, str]:
    """Return (verdict, reason): does the winner's held-out ``fr_mcd`` (dB, per seed) beat the defaults'?

    Yes only when the winner's worst seed is below the defaults' best seed (lower is better);
    None when either side has fewer than two seeds (no spread to go beyond).
    """
    if winner_is_defaults:
        return False, "no: the study's best trial is the defaults' own configuration"
    if not winner or not defaults:
        return None, "not measured: a side has no scored seed"
    w, d = seed_stats(winner), seed_stats(defaults)
    gap = d["mean"] - w["mean"]
    spread = max(w["max"] - w["min"], d["max"] - d["min"])
    numbers = (f"winner {w['mean']:.3f} dB ({w['min']:.3f}–{w['max']:.3f}), defaults {d['mean']:.3f} dB "
               f"({d['min']:.3f}–{d['max']:.3f}); difference of means {gap:+.3f} dB against a seed range of "
               f"{spread:.3f} dB")
    if w["n"] < 2 or d["n"] < 2:
        return None, f"not decidable: one seed on a side gives no spread ({numbers})"
    if w["max"] < d["min"]:
        return True, f"yes: the winner's worst seed beats the defaults' best ({numbers})"
    if w["mean"] >= d["mean"]:
        return False, f"no: the winner is not better on held-out sentences ({numbers})"
    return False, f"no: better on average but within the seed spread ({numbers})"


def pruner_verdicts(arms: dict[str, dict[str, Any]], goal: float = GOAL_SHARE) -> dict[str, Any]:
    """Return the pruner comparison: each pruned arm's share of the unpruned trial-steps, and the best arm.

    ``arms`` maps arm name -> arm record (``trial_steps_total``, ``trial_steps_to_unpruned_best``,
    ``best``). Best: among the arms that reached the unpruned best, the one that needed the fewest
    trial-steps; when none did, the lowest best value (then the fewest trial-steps spent).
    """
    unpruned = arms.get("none")
    total = unpruned["trial_steps_total"] if unpruned else None
    shares: dict[str, dict[str, Any]] = {}
    for name, arm in arms.items():
        if name == "none":
            continue
        reach = arm["trial_steps_to_unpruned_best"]
        share = None if reach is None or not total else round(reach / total, 4)
        shares[name] = {"share_of_unpruned_total": share, "goal_met": None if total is None else
                        share is not None and share <= goal}
    pruned = {n: a for n, a in arms.items() if n != "none"}
    if not pruned or total is None:
        return {"goal_share": goal, "arms": shares, "best": None,
                "reason": "not measured: needs the unpruned arm and at least one pruned arm"}
    reached = {n: a for n, a in pruned.items() if a["trial_steps_to_unpruned_best"] is not None}
    if reached:
        best = min(reached, key=lambda n: (reached[n]["trial_steps_to_unpruned_best"],
                                           reached[n]["trial_steps_total"]))
        reason = (f"{best} reached the unpruned best after {reached[best]['trial_steps_to_unpruned_best']} "
                  f"trial-steps ({100 * shares[best]['share_of_unpruned_total']:.0f}% of the unpruned study's "
                  f"{total}), the fewest of {len(reached)} arm(s) that reached it")
    else:
        scored = {n: a for n, a in pruned.items() if a["best"] is not None}
        if not scored:
            return {"goal_share": goal, "arms": shares, "best": None, "reason": "no pruned arm completed a trial"}
        best = min(scored, key=lambda n: (scored[n]["best"], scored[n]["trial_steps_total"]))
        reason = (f"no pruned arm reached the unpruned best ({unpruned['best']}); {best} came closest "
                  f"({scored[best]['best']}) with {scored[best]['trial_steps_total']} trial-steps")
    return {"goal_share": goal, "arms": shares, "best": best, "reason": reason}


def scale_section(section: dict[str, Any], factor: float, keys: tuple[str, ...] = STEP_KEYS) -> dict[str, Any]:
    """Return ``section`` with its step-valued ``keys`` multiplied by ``factor`` (rounded, at least 1)."""
    return {k: max(1, round(v * factor)) if k in keys and isinstance(v, int | float) else v
            for k, v in section.items()}


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------ the space of each arm


def arm_space(raw: dict[str, Any], arm: str, *, trials: int, max_steps: int, sampler_seed: int,
              device: str) -> tuple[dict[str, Any], int]:
    """Return (space file content, validation interval) of one arm from default.yaml's ``raw`` content."""
    space = dict(raw)
    study = dict(raw["study"])
    budget = int(study.get("max_steps") or 300)
    factor = max_steps / budget
    fixed = dict(raw.get("fixed") or {})
    interval = int(fixed.get("val_interval", 25))
    if max_steps < 4 * interval:  # a smoke budget: keep at least four validations
        interval = max(1, max_steps // 4)
    pruners = dict(ARM_PRUNERS)
    pruners[study["pruner"]["name"]] = study["pruner"]  # the space's own pruner, as the file gives it
    gates = [] if arm == "none" else [scale_section(g, factor, ("after_step",)) for g in study.get("gates", [])]
    pruner = scale_section(pruners[arm], factor)
    # Written out, so the report shows them: what the tuner (min_resource) and Optuna would use anyway.
    if pruner["name"] == "successive_halving":
        pruner = {"name": pruner["name"], "min_resource": interval, "reduction_factor": 4, **pruner}
    if pruner["name"] == "hyperband":
        pruner = {"name": pruner["name"], "min_resource": interval, "max_resource": max_steps, "reduction_factor": 3,
                  **pruner}
    study.update(name=f"study_value-{arm}", n_trials=trials, max_steps=max_steps,
                 sampler={**study.get("sampler", {"name": "tpe"}), "seed": sampler_seed},
                 pruner=pruner, gates=gates, samples=0)
    fixed.update(val_interval=interval, plots=False, torch_threads=1, device=device)
    space.update(description=f"written by bench/study_value.py from {DEFAULT_SPACE.name}: arm {arm}",
                 study=study, fixed=fixed)
    return space, interval


# ------------------------------------------------------------------ corpora and scoring


def ensure_corpus(workdir: Path, voice: str, utterances: int, seed: int) -> Path:
    """Return an eSpeak corpus of ``voice`` with varied prosody (``utterances`` sentences of ``seed``), made once."""
    from trainer.corpora.make import make_corpus

    corpus = workdir / f"voice-{voice}-prosody-{utterances}-seed{seed}"
    if not (corpus / "metadata.csv").is_file():
        make_corpus(corpus, lang="en", utterances=utterances, seed=seed, voice=voice, vary_prosody=True)
    return corpus


def heldout_indices(heldout: Path, corpus: Path) -> tuple[list[int], int]:
    """Return (indices of the held-out utterances whose text is not in ``corpus``, how many were left out)."""
    from trainer.data.corpus import read_corpus

    seen = {u.text.strip().lower() for u in read_corpus(corpus)}
    items = read_corpus(heldout)
    keep = [i for i, u in enumerate(items) if u.text.strip().lower() not in seen]
    return keep, len(items) - len(keep)


def score_checkpoint(checkpoint: Path, heldout: Path, indices: list[int], corpus: Path,
                     device: str) -> dict[str, float]:
    """Return the held-out free-running figures (``HELDOUT_KEYS``) of ``checkpoint``'s model.

    Every held-out sentence in ``indices`` is synthesised from text alone (adaptive stop gate
    at full progress) and compared with its recording; the mel range is the fine-tuning
    corpus's training split's.
    """
    import torch

    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import TTSDataset
    from trainer.evaluation.validate import band_range, free_running
    from trainer.synthesis.infer import load_model
    from trainer.training.loop import load_data

    model, config = load_model(checkpoint, device)
    dataset = TTSDataset.for_config(read_corpus(heldout), config)
    train_set = load_data(config, corpus, False)[0]
    devices = [torch.device(device).index or 0] if device == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(SCORING_SEED)
        metrics, _ = free_running(model, dataset, indices, config, torch.device(device),
                                  float(model.frames_per_char), progress=1.0, band_range=band_range(train_set))
    return {k: round(float(metrics[k]), 4) for k in HELDOUT_KEYS if k in metrics}


def retrain(spec: dict[str, Any]) -> dict[str, Any]:
    """Train one configuration (``spec``: space, params, seed, paths) and score its best checkpoint held out.

    Runs in a fresh process. Returns {"seed", "val_best", "best_step", "heldout", "wall_s",
    "median_sec_per_step"}: ``val_best`` is the best validation ``fr_mcd`` (what a trial's value is).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import json

    from trainer.training.loop import train
    from tuner.space.load import load_space

    space = load_space(Path(spec["space"]))
    config = space.build_config(spec["params"], max_steps=spec["max_steps"]).replace(seed=spec["seed"])
    run_dir = Path(spec["run_dir"])
    history: list[tuple[int, float]] = []

    def record(step: int, metrics: dict[str, float]) -> bool:
        history.append((step, float(metrics.get(OBJECTIVE, math.nan))))
        return False

    started = time.perf_counter()
    result = train(config, spec["corpus"], run_dir, callback=record, warm_start=spec["warm_start"],
                   show_progress=False)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    step_times = [r["sec_per_step"] for r in records if r["kind"] == "train" and r["step"] > 1]
    finite = [(v, s) for s, v in history if math.isfinite(v)]
    checkpoint = run_dir / "checkpoints" / "best.pt"
    heldout = score_checkpoint(checkpoint if checkpoint.is_file() else run_dir / "checkpoints" / "last.pt",
                               Path(spec["heldout"]), spec["indices"], Path(spec["corpus"]), spec["device"])
    return {"seed": spec["seed"], "val_best": round(min(finite)[0], 4) if finite else None,
            "best_step": min(finite)[1] if finite else None, "steps": result.step, "heldout": heldout,
            "wall_s": round(wall, 1),
            "median_sec_per_step": round(statistics.median(step_times), 3) if step_times else None}


# ------------------------------------------------------------------ studies


def run_study(arm: str, space: Path, corpus: Path, trials: int) -> dict[str, Any]:
    """Run one arm's study (a ``tuner run-study`` process, home beside ``space``); return {"arm", "wall_s", "rc"}."""
    env = dict(os.environ)
    env.pop("SMART_TUNER_STORAGE", None)  # each study's own SQLite file in its home
    env.pop("SMART_TUNER_FAULT", None)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(corpus),
               "--warm-start", str(BASE_CHECKPOINT), "--home", str(space.parent / "home"), "--trials", str(trials),
               "--no-mlflow", "--quiet"]
    started = time.perf_counter()
    with (space.parent / "run-study.log").open("wb") as log:
        try:
            rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                timeout=STUDY_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = None
    if rc != 0:
        print(f"study_value: the {arm} study ended with {rc}; see {space.parent / 'run-study.log'}", file=sys.stderr)
    say(f"study {arm} done in {time.perf_counter() - started:.0f} s")
    wall = {"arm": arm, "wall_s": round(time.perf_counter() - started, 1), "rc": rc}
    (space.parent / "wall.json").write_text(json.dumps(wall), encoding="utf-8")  # for --reuse
    return wall


def finished_study(space: Path, arm: str, trials: int, max_steps: int) -> dict[str, Any] | None:
    """Return the wall record of an arm whose study already holds ``trials`` finished trials (--reuse), else None."""
    if len(load_arm_trials(space, arm, max_steps)) < trials:
        return None
    try:
        return json.loads((space.parent / "wall.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"arm": arm, "wall_s": None, "rc": 0}


def trial_record(trial: Any, max_steps: int) -> dict[str, Any]:
    """Return a plain record of an Optuna FrozenTrial: number, state, value, steps trained, params, validations."""
    values = sorted((int(s), float(v)) for s, v in trial.intermediate_values.items())
    complete = trial.state.name == "COMPLETE"
    if values:  # the last validation is where training ended (the budget, or where it was pruned)
        steps = values[-1][0]
    else:
        steps = int(trial.user_attrs.get("last_step", max_steps if complete else 0))
    value = trial.value if complete and trial.value is not None else None
    return {"number": trial.number, "state": trial.state.name, "value": _rounded(value, 4), "steps": steps,
            "params": dict(trial.params),  # exact: the winner is retrained with them
            "values": [[s, round(v, 4)] for s, v in values],
            "reason": trial.user_attrs.get("prune_reason") or trial.user_attrs.get("fail_reason")}


def load_arm_trials(space: Path, arm: str, max_steps: int) -> list[dict[str, Any]]:
    """Return the trial records of an arm's study (home beside ``space``), in trial-number order."""
    import optuna

    from tuner.study.storage import open_storage

    database = space.parent / "home" / "optuna.db"
    if not database.is_file():
        return []
    storage = open_storage(f"sqlite:///{database}")
    try:
        study = optuna.load_study(study_name=f"study_value-{arm}", storage=storage)
    except KeyError:  # the study process died before creating it
        return []
    return [trial_record(t, max_steps) for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
            if t.state.is_finished()]


def arm_record(arm: str, pruner: dict[str, Any], gates: list, trials: list[dict[str, Any]], target: float | None,
               wall: dict[str, Any], max_steps: int) -> dict[str, Any]:
    """Return one arm's figures: best, trial-steps, steps to the unpruned best, counts, curve, rank agreement."""
    complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = min(complete, key=lambda t: t["value"]) if complete else None
    return {"pruner": pruner, "gates": len(gates), "best": best["value"] if best else None,
            "best_trial": best["number"] if best else None,
            "trial_steps_total": sum(t["steps"] for t in trials),
            "trial_steps_to_unpruned_best": steps_to_reach(trials, target),
            "complete": len(complete), "pruned": sum(t["state"] == "PRUNED" for t in trials),
            "failed": sum(t["state"] == "FAIL" for t in trials), "wall_s": wall.get("wall_s"), "rc": wall.get("rc"),
            "curve": best_curve(trials), "rank_agreement": rank_agreement(trials, max_steps), "trials": trials}


# ------------------------------------------------------------------ the plot


def plot_curves(arms: dict[str, dict[str, Any]], target: float | None, path: Path, title: str) -> None:
    """Write best value so far (dB) against cumulative trial-steps, one step line per arm, as a PNG."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from trainer.fileio import atomic_write_bytes

    figure = Figure(figsize=(7, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    styles = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D")]  # arms that find the same best overlap: tell them apart
    for (name, arm), (dash, marker) in zip(arms.items(), styles * len(arms), strict=False):
        points = [(x, y) for x, y in arm["curve"] if y is not None]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        line = axes.step(xs, ys, where="post", linestyle=dash, label=f"{name} ({arm['trial_steps_total']} trial-steps)")
        axes.plot(xs, ys, marker, color=line[0].get_color(), markersize=4, fillstyle="none")
    if target is not None:
        axes.axhline(target, color="grey", linestyle="--", linewidth=1, label="unpruned best")
    axes.set_xlabel("cumulative trial-steps")
    axes.set_ylabel(f"best {OBJECTIVE} so far (dB)")
    axes.set_title(title)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


# ------------------------------------------------------------------ driver


def say(text: str) -> None:
    """Print a progress line on stderr (stdout carries the JSON)."""
    print(f"study_value: {text}", file=sys.stderr, flush=True)


def pruner_list(text: str) -> list[str]:
    """Parse ``--pruners``: comma-separated names among ARM_PRUNERS, no repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ARM_PRUNERS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct names among {', '.join(ARM_PRUNERS)}, got {text!r}")
    return names


def relative(path: Path) -> str:
    """Return ``path`` relative to the repository when inside it, else as given."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=bounded_int(1), default=12, help="trials per study (default 12)")
    parser.add_argument("--max-steps", type=bounded_int(4), default=150, help="steps per trial (default 150)")
    parser.add_argument("--seeds", type=bounded_int(1), default=3,
                        help="seeds (1..N) for the defaults and for the winner (default 3)")
    parser.add_argument("--pruners", type=pruner_list, default=list(ARM_PRUNERS),
                        help=f"arms, comma-separated (default {','.join(ARM_PRUNERS)})")
    parser.add_argument("--jobs", type=bounded_int(1), default=2, help="processes at a time (default 2)")
    parser.add_argument("--sampler-seed", type=int, default=1, help="TPE seed of every study (default 1)")
    parser.add_argument("--voice", default="en-us+m3", help="eSpeak voice the base never heard (default en-us+m3)")
    parser.add_argument("--utterances", type=bounded_int(12), default=120,
                        help="fine-tuning corpus size (default 120; 8 of them are the trials' validation)")
    parser.add_argument("--heldout", type=bounded_int(1), default=16, help="held-out sentences (default 16)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "study_value.png")
    parser.add_argument("--reuse", type=Path, default=None, metavar="FOLDER",
                        help="an earlier run's work folder: studies that already hold --trials finished trials are "
                             "not run again (same arguments), the rest runs as usual")
    args = parser.parse_args()
    args.workdir = args.workdir.resolve()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible")
    if not BASE_CHECKPOINT.is_file():
        parser.error(f"base checkpoint {BASE_CHECKPOINT} not found")
    import optuna
    import torch
    import yaml

    from trainer.corpora.make import SECOND_VOICES
    from trainer.yamlio import safe_load
    from tuner.space.load import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)  # this process scores between the others' runs
    os.environ["SMART_TUNER_CACHE"] = str(args.workdir / "feature-cache")  # this process, the studies, the retrains
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every child
    started = time.perf_counter()

    corpus = ensure_corpus(args.workdir, args.voice, args.utterances, CORPUS_SEED)
    heldout = ensure_corpus(args.workdir, args.voice, args.heldout, HELDOUT_SEED)
    indices, overlap = heldout_indices(heldout, corpus)
    if not indices:
        parser.error("every held-out sentence is also in the fine-tuning corpus")

    folder = args.reuse.resolve() if args.reuse else args.workdir / "study_value" / time.strftime("%Y%m%d-%H%M%S")
    raw = safe_load(DEFAULT_SPACE.read_text(encoding="utf-8"))
    default_arm = raw["study"]["pruner"]["name"]
    spaces: dict[str, Path] = {}
    interval = 0
    for arm in args.pruners:
        content, interval = arm_space(raw, arm, trials=args.trials, max_steps=args.max_steps,
                                      sampler_seed=args.sampler_seed, device=args.device)
        spaces[arm] = folder / arm / "space.yaml"
        spaces[arm].parent.mkdir(parents=True, exist_ok=True)
        spaces[arm].write_text("# " + content["description"] + "\n" + yaml.safe_dump(content, sort_keys=False),
                               encoding="utf-8")
        load_space(spaces[arm])  # the tuner's own validation, before anything runs
    space_of = {arm: load_space(path) for arm, path in spaces.items()}
    any_space = space_of[args.pruners[0]]
    defaults = any_space.defaults()
    winner_arm = default_arm if default_arm in spaces else args.pruners[0]

    # The base, scored first: it checks the scoring path (and fills the feature cache) before the long part.
    base_heldout = score_checkpoint(BASE_CHECKPOINT, heldout, indices, corpus, args.device)
    say(f"base checkpoint on {len(indices)} held-out sentences: {base_heldout}")

    seeds = list(range(1, args.seeds + 1))

    def spec(kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
        return {"space": str(spaces[args.pruners[0]]), "params": params, "seed": seed, "max_steps": args.max_steps,
                "run_dir": str(folder / "retrain" / f"{kind}-seed{seed}"), "corpus": str(corpus),
                "heldout": str(heldout), "indices": indices, "warm_start": str(BASE_CHECKPOINT),
                "device": args.device}

    walls: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[dict[str, Any]]] = {"defaults": [], "winner": []}
    winner: dict[str, Any] | None = None
    say(f"{len(spaces)} studies of {args.trials} trials x {args.max_steps} steps, {len(seeds)} seed(s) for the "
        f"defaults and the winner, {args.jobs} at a time; work folder {folder}")
    with ThreadPoolExecutor(args.jobs) as threads, \
            ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as processes:
        # The threads bound how many things run at once; a retraining's thread waits on its process.
        def train_task(kind: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
            try:
                result = processes.submit(retrain, spec(kind, params, seed)).result()
            except Exception as err:  # e.g. a diverging run: recorded as that seed's outcome, the bench goes on
                say(f"{kind} seed {seed} failed: {err!r}")
                return {"seed": seed, "error": repr(err), "heldout": {}, "val_best": None}
            say(f"{kind} seed {seed}: held-out {OBJECTIVE} {result['heldout'].get(OBJECTIVE)}")
            return result

        pending: dict[Future, tuple[str, str]] = {}

        def study_done(name: str, result: dict[str, Any]) -> None:
            nonlocal winner
            walls[name] = result
            if name != winner_arm:
                return
            trials = load_arm_trials(spaces[name], name, args.max_steps)
            complete = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
            if complete:
                best = min(complete, key=lambda t: t["value"])
                winner = {"arm": name, "trial": best["number"], "params": best["params"],
                          "study_value": best["value"],
                          "is_defaults": best["number"] == 0 or best["params"] == defaults}
                if not winner["is_defaults"]:  # the defaults' runs already are its retrainings
                    for seed in seeds:
                        pending[threads.submit(train_task, "winner", best["params"], seed)] = ("winner", str(seed))

        for arm, path in spaces.items():
            earlier = finished_study(path, arm, args.trials, args.max_steps) if args.reuse else None
            if earlier is not None:
                say(f"study {arm}: reusing its {args.trials} finished trials")
                study_done(arm, earlier)
            else:
                pending[threads.submit(run_study, arm, path, corpus, args.trials)] = ("study", arm)
        for seed in seeds:
            pending[threads.submit(train_task, "defaults", defaults, seed)] = ("defaults", str(seed))
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                kind, name = pending.pop(future)
                result = future.result()
                if kind == "study":
                    study_done(name, result)
                else:
                    runs[kind].append(result)

    trials_of = {arm: load_arm_trials(path, arm, args.max_steps) for arm, path in spaces.items()}
    target = None
    if "none" in trials_of:
        values = [t["value"] for t in trials_of["none"] if t["value"] is not None]
        target = min(values) if values else None
    arms = {arm: arm_record(arm, space_of[arm].study.pruner, list(space_of[arm].study.gates), trials_of[arm], target,
                            walls.get(arm, {}), args.max_steps) for arm in spaces}
    for arm in arms.values():
        for trial in arm["trials"]:
            if trial["state"] == "FAIL":
                say(f"a trial failed: {trial['reason']}")
    if winner is not None and winner["is_defaults"]:
        runs["winner"] = runs["defaults"]
    for kind in runs:
        runs[kind].sort(key=lambda r: r["seed"])

    def summary(kind: str) -> dict[str, Any]:
        return {key: seed_stats([r["heldout"].get(key) for r in runs[kind]]) for key in HELDOUT_KEYS} | \
            {"val_best": seed_stats([r["val_best"] for r in runs[kind]])}

    if winner is None:
        verdict, reason = None, f"not measured: the {winner_arm} study completed no trial"
    else:
        verdict, reason = beats_defaults([r["heldout"][OBJECTIVE] for r in runs["winner"] if OBJECTIVE in r["heldout"]],
                                         [r["heldout"][OBJECTIVE] for r in runs["defaults"]
                                          if OBJECTIVE in r["heldout"]], winner["is_defaults"])
    plot_curves(arms, target, args.plot, f"{OBJECTIVE}: best so far, {args.trials} trials x {args.max_steps} steps, "
                f"sampler seed {args.sampler_seed}")
    result = {
        "bench": "study_value", "preset": any_space.preset, "device": args.device, "trials": args.trials,
        "max_steps": args.max_steps, "val_interval": interval, "sampler_seed": args.sampler_seed, "seeds": seeds,
        "jobs": args.jobs, "objective": OBJECTIVE, "base_checkpoint": relative(BASE_CHECKPOINT),
        "corpus": {"voice": args.voice, "vary_prosody": True, "utterances": args.utterances, "seed": CORPUS_SEED,
                   "val_size": any_space.build_config(defaults).val_size, "second_voice_of_demo": SECOND_VOICES["en"]},
        "heldout": {"utterances": args.heldout, "seed": HELDOUT_SEED, "scored": len(indices),
                    "left_out_as_seen": overlap},
        "space": relative(DEFAULT_SPACE), "defaults_params": defaults, "default_arm": default_arm,
        "base_heldout": base_heldout,
        "defaults": {"runs": runs["defaults"], "summary": summary("defaults")},
        "winner": None if winner is None else {**winner, "runs": runs["winner"], "summary": summary("winner")},
        "winner_beats_defaults": verdict, "winner_reason": reason,
        "unpruned_best": target, "arms": arms, "pruners": pruner_verdicts(arms),
        "plot": relative(args.plot), "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine(args.device),
        "command": "python bench/study_value.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
