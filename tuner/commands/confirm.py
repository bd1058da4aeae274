"""``tuner confirm``: retrain a study's best trials and its defaults on paired seeds, and test the difference.

The runs are a study of their own (``NAME:confirm``) with the original run's settings (its
corpus, base checkpoint, preset and step budget, kept on the study by ``run-study``), run by the
ordinary worker loop, so ``tuner confirm`` on several machines shares the runs as ``run-study``
shares trials, and an interrupted confirmation continues where it stopped. Only the queued
runs are trained. ``tuner.evidence.confirm`` chooses the candidates and judges the outcome.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import preset
from tuner.commands.run_study import SETTINGS_ATTR, Plan, ServeOptions, serve
from tuner.errors import TunerError
from tuner.evidence.confirm import CONFIRMATION_ATTR, candidates, outcome_lines, queue_runs, seeds_for, summarize
from tuner.paths import Home
from tuner.space.spec import CONFIRM_SUFFIX
from tuner.study.storage import check_storage, sqlite_single_process
from tuner.study.studies import load_existing_study
from tuner.study.timeouts import timeouts
from tuner.trial.protocol import RunSettings
from tuner.trial.setup import TrialSetup
from tuner.trial.supervisor import Limits

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["ConfirmRequest", "confirm"]


@dataclass(frozen=True)
class ConfirmRequest:
    """What ``tuner confirm`` was asked."""

    storage_url: str
    home: Path | None = None
    study: str | None = None
    top: int = 3
    seeds: int = 8
    gpus: list[str] | None = None
    trial_timeout: float | None = None
    mlflow: bool = True
    quiet: bool = False


def _settings(study: Any) -> RunSettings:
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if not stored:
        raise TunerError(f"study {study.study_name!r} records no run settings (it was run by an earlier version): "
                         "run `tuner run-study` on it once more to record them, then confirm")
    return RunSettings(**stored)


def confirm(request: ConfirmRequest, say: Callable[[str], None] | None = None) -> int:
    """Run ``tuner confirm``; return the exit code (0 also when no candidate beat the defaults)."""
    say = say or ((lambda line: None) if request.quiet else (lambda line: print(line, flush=True)))
    home = Home.resolve(request.home)
    check_storage(request.storage_url, create_sqlite=False)
    study = load_existing_study(request.storage_url, request.study)
    if study.study_name.endswith(CONFIRM_SUFFIX):
        raise TunerError(f"{study.study_name!r} is a confirmation; name the study it confirms")
    settings = _settings(study)
    original = TrialSetup.load(settings)
    chosen = candidates(study, original.space, preset(settings.preset), request.top)
    seeds = seeds_for(request.seeds)
    setup = TrialSetup.load(replace(settings, confirmation=True))
    plan = Plan(space=setup.space, home=home, study_name=study.study_name + CONFIRM_SUFFIX,
                storage_url=request.storage_url, data=Path(settings.data),
                warm_start=Path(settings.warm_start) if settings.warm_start else None, use_demo=False,
                preset=settings.preset, max_steps=settings.max_steps, n_trials=len(chosen) * len(seeds),
                gpus=request.gpus, limits=Limits(request.trial_timeout, original.space.study.stall_timeout),
                timeouts=timeouts())
    say(f"confirming {', '.join(c.label for c in chosen[1:])} against the defaults on {len(seeds)} seeds "
        f"({plan.n_trials} runs of {settings.max_steps} steps)")
    options = ServeOptions(mlflow=request.mlflow, quiet=request.quiet)

    def prepare(runs: Any) -> None:
        queue_runs(runs, setup.space, chosen, seeds)

    with sqlite_single_process(request.storage_url):
        runs, result = serve(plan, setup, options, say, prepare=prepare, queued_only=True)
    outcome = summarize(runs, chosen, seeds)
    study.set_user_attr(CONFIRMATION_ATTR, outcome)
    if result.exit_code != 0:
        print(f"tuner: {result.reason}", file=sys.stderr)
    for line in outcome_lines(outcome, study.user_attrs.get("objective") or ["value"]):
        say(line)
    return result.exit_code
