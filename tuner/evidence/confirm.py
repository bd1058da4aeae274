"""Winner confirmation: the study's best configurations and its defaults, retrained on paired seeds.

A study picks its best trial out of many, each trained once: some of its lead is luck (the
winner's curse), and a trial's value says nothing about the next seed. So the top ``k``
complete trials and the space's defaults are trained again on ``n`` fresh seeds, every
candidate on the same seeds (the same initial weights and batch order for a given seed), and
each candidate is tested against the defaults seed by seed (``tuner.evidence.stats``): a
one-sided exact Wilcoxon signed-rank test, the Hodges–Lehmann shift and its 95 % interval.
The confirmed winner is the candidate that beats the defaults (p < 0.05) by the most; when
none does, the study has no confirmed winner, and says so.

The runs form a study of their own beside the original (``NAME:confirm``, the space's
confirmation variant: ``SearchSpace.confirmation``), so they run on the fleet like any trial
(leases, retries, MLflow, several workers); each run's parameters, its seed included, are
queued once (creation keys). The outcome is stored on the original study (``confirmation``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState, create_trial

from tuner.errors import TunerError
from tuner.evidence.stats import compare_paired
from tuner.study.optuna_api import CREATE_KEY_ATTR

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from trainer.config import TrainConfig
    from tuner.space.spec import SearchSpace

__all__ = ["CONFIRMATION_ATTR", "Candidate", "candidates", "confirmed_winner", "outcome_lines", "queue_runs",
           "seeds_for", "summarize", "winner_trial"]

CONFIRMATION_ATTR = "confirmation"  # user attribute of the original study: the confirmation's outcome
DEFAULTS = "defaults"
SEED_BASE = 10_000  # confirmation seeds start here: never the seed a study's trials trained with


@dataclass(frozen=True)
class Candidate:
    """A configuration to retrain: the space's defaults, or a trial's parameters."""

    label: str  # "defaults" or "trial N"
    params: dict[str, Any]
    trial: int | None = None  # the study trial it comes from (None: the defaults)
    value: float | None = None  # that trial's value in the study


def _defaults(space: SearchSpace, base: TrainConfig) -> dict[str, Any]:
    """Return the defaults as parameters: each parameter's default, else the preset's value of its first key."""
    params = {}
    for spec in space.params:
        value = spec.default if spec.has_default else getattr(base, spec.targets[0])
        inside = value in spec.choices if spec.kind == "categorical" else spec.bounds()[0] <= value <= spec.bounds()[1]
        if not inside:
            raise TunerError(f"{space.path.name}: parameter {spec.name!r} has no default and the preset's "
                             f"{spec.targets[0]} ({value!r}) is outside its range: give it a default to confirm "
                             "against")
        params[spec.name] = value
    return params


def candidates(study: optuna.Study, space: SearchSpace, base: TrainConfig, top: int) -> list[Candidate]:
    """Return the defaults and the ``top`` best complete trials of distinct parameters (one objective only)."""
    if len(study.directions) != 1:
        raise TunerError(f"study {study.study_name!r} has several objectives: confirmation compares one value")
    if top < 1:
        raise TunerError(f"--top must be >= 1, got {top}")
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None and math.isfinite(t.value)]
    if not complete:
        raise TunerError(f"study {study.study_name!r} has no complete trial to confirm")
    sign = 1.0 if study.direction.name == "MINIMIZE" else -1.0
    chosen = [Candidate(DEFAULTS, _defaults(space, base))]
    seen = [chosen[0].params]
    for trial in sorted(complete, key=lambda t: (sign * float(t.value or 0.0), t.number)):
        if len(chosen) > top:
            break
        if trial.params in seen:
            continue  # the defaults' own trial, or a duplicate: nothing new to confirm
        seen.append(trial.params)
        chosen.append(Candidate(f"trial {trial.number}", dict(trial.params), trial.number, trial.value))
    return chosen


def seeds_for(count: int) -> list[int]:
    """Return the ``count`` seeds of a confirmation (the same for every study: runs are comparable across them)."""
    if count < 2:
        raise TunerError(f"--seeds must be >= 2 (a paired test needs pairs), got {count}")
    return [SEED_BASE + i for i in range(count)]


def queue_runs(confirm_study: optuna.Study, confirm_space: SearchSpace, chosen: list[Candidate],
               seeds: list[int]) -> int:
    """Queue one run per (candidate, seed) in the confirmation study, each once; return how many runs there are."""
    distributions = confirm_space.distributions()
    for candidate in chosen:
        for seed in seeds:
            params = {**candidate.params, "seed": seed}
            run = create_trial(state=TrialState.WAITING, params=params,
                               distributions={name: distributions[name] for name in params},
                               user_attrs={"candidate": candidate.label, "seed": seed},
                               system_attrs={CREATE_KEY_ATTR: f"confirm {candidate.label} seed {seed}"})
            confirm_study.add_trial(run)
    return len(chosen) * len(seeds)


def _scores(confirm_study: optuna.Study) -> dict[str, dict[int, float]]:
    """Return {candidate label: {seed: value}} of the confirmation's complete runs."""
    found: dict[str, dict[int, float]] = {}
    for run in confirm_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        label, seed = run.user_attrs.get("candidate"), run.user_attrs.get("seed")
        if label is not None and seed is not None and run.value is not None:
            found.setdefault(str(label), {})[int(seed)] = float(run.value)
    return found


def summarize(confirm_study: optuna.Study, chosen: list[Candidate], seeds: list[int]) -> dict[str, Any]:
    """Return the confirmation's outcome: each candidate against the defaults on the seeds both trained, and the winner.

    A seed on which either side has no complete run (it failed for good) is left out of that
    pair and counted in ``missing``.
    """
    direction = confirm_study.direction.name.lower()
    scores = _scores(confirm_study)
    defaults = scores.get(DEFAULTS, {})
    results = []
    for candidate in chosen[1:]:
        mine = scores.get(candidate.label, {})
        common = [s for s in seeds if s in mine and s in defaults]
        entry: dict[str, Any] = {"label": candidate.label, "trial": candidate.trial, "params": candidate.params,
                                 "study_value": candidate.value, "scores": [mine.get(s) for s in seeds],
                                 "missing": len(seeds) - len(common)}
        if len(common) >= 2:
            entry["comparison"] = compare_paired([mine[s] for s in common], [defaults[s] for s in common],
                                                 direction).as_dict()
        results.append(entry)
    better = [r for r in results if r.get("comparison", {}).get("better")]
    sign = 1.0 if direction == "minimize" else -1.0
    winner = min(better, key=lambda r: sign * r["comparison"]["estimate"], default=None)
    return {"seeds": seeds, "direction": direction, "defaults": {"params": chosen[0].params,
                                                                 "scores": [defaults.get(s) for s in seeds]},
            "candidates": results, "winner": None if winner is None else winner["trial"]}


def winner_trial(study: optuna.Study) -> FrozenTrial:
    """Return the trial a user takes from ``study``: the confirmed winner when a confirmation found one, else the
    best trial (single objective)."""
    entry = confirmed_winner(study)
    if entry is not None:
        return next(t for t in study.get_trials(deepcopy=False) if t.number == entry["trial"])
    return study.best_trial


def confirmed_winner(study: optuna.Study) -> dict[str, Any] | None:
    """Return the confirmed winner's entry of ``study``'s confirmation, or None (no confirmation, or no winner)."""
    outcome = study.user_attrs.get(CONFIRMATION_ATTR)
    if not outcome or outcome.get("winner") is None:
        return None
    return next((c for c in outcome["candidates"] if c["trial"] == outcome["winner"]), None)


def outcome_lines(outcome: dict[str, Any], objective: list[str]) -> list[str]:
    """Return a confirmation's outcome in words: each candidate against the defaults, and the winner."""
    metric = objective[0]
    seeds = len(outcome["seeds"])
    lines = [f"confirmation on {seeds} paired seeds ({metric}, {outcome['direction']}; candidate - defaults):"]
    for entry in outcome["candidates"]:
        comparison = entry.get("comparison")
        if comparison is None:
            lines.append(f"  {entry['label']}: too few runs finished to compare ({entry['missing']} seeds missing)")
            continue
        low, high = comparison["ci95"]
        verdict = "better" if comparison["better"] else "not shown better"
        lines.append(f"  {entry['label']}: shift {comparison['estimate']:+.4g} [{low:+.4g}, {high:+.4g}] 95 % CI, "
                     f"p {comparison['p_value']:.3g} (one-sided), {verdict}; detectable at these seeds: "
                     f"{comparison['mde']:.3g}" + (f"; {entry['missing']} seeds missing" if entry["missing"] else ""))
    winner = outcome.get("winner")
    lines.append(f"confirmed winner: trial {winner}" if winner is not None
                 else "no confirmed winner: no candidate beat the defaults at p < 0.05")
    return lines
