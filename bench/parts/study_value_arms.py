"""bench/study_value.py's arms: one study of the same space per pruner.

Each arm's space is default.yaml with the bench's budget, a seeded sampler and the arm's pruner
(step settings scaled to the budget); its study is one ``tuner run-study`` process whose home lies
beside the space file; its finished trials become plain records (harness.studies.TrialRecord), and
the arms are compared on the trial-steps they spent to reach the unpruned study's best.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from harness.common import BASE_CHECKPOINT, ROOT, say
from harness.stats import rounded
from harness.studies import (
    TrialRecord,
    best_curve,
    child_env,
    rank_agreement,
    run_study_command,
    steps_to_reach,
    stop_text,
)
from sections.study_value import ArmRecord

DEFAULT_SPACE = ROOT / "search_spaces" / "default.yaml"
GOAL_SHARE = 0.35  # the goal: the pruned study reaches the unpruned best within 35 % of its trial-steps
STUDY_TIMEOUT_S = 6 * 3600  # a study process is killed after this long (something is wrong)
# The arms besides default.yaml's own pruner, which is read from the file (and replaces its
# namesake here). Step settings are at the space's 300-step budget and scaled with it.
ARM_PRUNERS: dict[str, dict[str, Any]] = {
    "none": {"name": "none"},
    "median": {"name": "median", "n_startup_trials": 3, "n_warmup_steps": 100, "patience": 2},
    "successive_halving": {"name": "successive_halving"},  # min_resource: the validation interval (the tuner's)
    "hyperband": {"name": "hyperband"},  # min_resource: the validation interval; max_resource: the budget
}
STEP_KEYS = ("n_warmup_steps", "min_resource", "max_resource")  # pruner settings counted in steps


def scale_section(section: dict[str, Any], factor: float, keys: tuple[str, ...] = STEP_KEYS) -> dict[str, Any]:
    """Return ``section`` with its step-valued ``keys`` multiplied by ``factor`` (rounded, at least 1)."""
    return {k: max(1, round(v * factor)) if k in keys and isinstance(v, int | float) else v
            for k, v in section.items()}


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


def run_study(arm: str, space: Path, corpus: Path, trials: int) -> dict[str, Any]:
    """Run one arm's study (a ``tuner run-study`` process, home beside ``space``); return {"arm", "wall_s", "rc"}."""
    # each study's own SQLite file in its home
    env = child_env(["SMART_TUNER_STORAGE", "SMART_TUNER_FAULT"], OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    command = run_study_command(space, corpus, space.parent / "home", trials, warm_start=BASE_CHECKPOINT)
    started = time.perf_counter()
    with (space.parent / "run-study.log").open("wb") as log:
        try:
            rc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                timeout=STUDY_TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            rc = None
    if rc != 0:
        print(f"study_value: the {arm} study ended with {rc}; see {space.parent / 'run-study.log'}", file=sys.stderr)
    say("study_value", f"study {arm} done in {time.perf_counter() - started:.0f} s")
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


def trial_record(trial: Any, max_steps: int) -> TrialRecord:
    """Return a plain record of an Optuna FrozenTrial: number, state, value, steps trained, params, validations."""
    values = sorted((int(s), float(v)) for s, v in trial.intermediate_values.items())
    complete = trial.state.name == "COMPLETE"
    if values:  # the last validation is where training ended (the budget, or where it was pruned)
        steps = values[-1][0]
    else:
        steps = int(trial.user_attrs.get("last_step", max_steps if complete else 0))
    value = trial.value if complete and trial.value is not None else None
    return {"number": trial.number, "state": trial.state.name, "value": rounded(value, 4), "steps": steps,
            "params": dict(trial.params),  # exact: the winner is retrained with them
            "values": [[s, round(v, 4)] for s, v in values],
            "reason": None if complete else stop_text(trial) or None}


def load_arm_trials(space: Path, arm: str, max_steps: int) -> list[TrialRecord]:
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
               wall: dict[str, Any], max_steps: int) -> ArmRecord:
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
