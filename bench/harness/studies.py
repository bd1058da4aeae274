"""What the benches that run ``tuner run-study`` share (study_efficiency, study_value, tuner_overhead, chaos).

The child environment and command of a study process, the feature cache filled once before the
studies start, PostgreSQL databases made for one run and dropped after it; and a study's trials as
plain records (``TrialRecord``): the trial-steps spent before a target value, the best value so far
against trial-steps, and how early the trials' ranks are known.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from harness.common import BASE_CHECKPOINT, require_cuda
from harness.stats import rounded, spearman


class TrialRecord(TypedDict):
    """A finished trial as the benches keep it (bench/study_value.py trial_record; study_efficiency keeps only
    state, value and steps)."""

    number: int
    state: str  # Optuna's state name: COMPLETE, PRUNED, FAIL
    value: float | None  # its objective (best validation) when complete
    steps: int  # the steps it trained
    params: dict[str, Any]
    values: list[list[float]]  # [step, objective] of every validation
    reason: str | None  # why it was pruned or failed


class RankAgreement(TypedDict):
    """Spearman's ρ between the objective at a third of the budget and at the end, over complete trials."""

    step: int | None  # the validation at or after a third of the budget, of the first trial that had one
    n: int
    rho_value: float | None  # against the trial's value (its best validation)
    rho_last: float | None  # against its last validation
    by_step: dict[str, float | None]  # against the value, at every validation step all trials reported


def setup_study_bench(args: argparse.Namespace, parser: argparse.ArgumentParser, needs_base: bool = False) -> None:
    """What a bench that runs studies does first: ``--workdir`` made absolute (the study processes run elsewhere),
    ``--device cuda`` checked, the shipped base checked when the bench fine-tunes it (``needs_base``), Optuna's
    logging quieted, and the feature cache pointed into the work folder (this process and every study it starts).
    """
    args.workdir = args.workdir.resolve()
    require_cuda(parser, getattr(args, "device", "cpu"))
    if needs_base and not BASE_CHECKPOINT.is_file():
        parser.error(f"base checkpoint {BASE_CHECKPOINT} not found")
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["SMART_TUNER_CACHE"] = str(args.workdir / "feature-cache")


def child_env(drop: Iterable[str], **values: str) -> dict[str, str]:
    """Return this process's environment without the variables ``drop``, with ``values`` set (a study's own)."""
    env = {k: v for k, v in os.environ.items() if k not in set(drop)}
    env.update(values)
    return env


def run_study_command(space: Path, corpus: Path, home: Path, trials: int, *, study: str | None = None,
                      warm_start: Path | None = None, mlflow: bool = False) -> list[str]:
    """Return the command of one quiet ``tuner run-study`` process on ``space`` (MLflow off unless ``mlflow``)."""
    return [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space),
            *(["--study", study] if study else []), "--data", str(corpus),
            *(["--warm-start", str(warm_start)] if warm_start else []), "--home", str(home), "--trials", str(trials),
            *([] if mlflow else ["--no-mlflow"]), "--quiet"]


def warm_feature_cache(space_path: Path, corpus: Path) -> None:
    """Compute the corpus's mel features once, so that no study's first trial pays for them (or two do at once)."""
    from trainer.training.session import load_data
    from tuner.space.load import load_space

    space = load_space(space_path)
    load_data(space.build_config(space.defaults_or_low()), corpus, False)


def steps_to_reach(trials: list[dict[str, Any]], target: float | None) -> int | None:
    """Return the trial-steps spent, in trial order, up to the first complete trial with value <= ``target``.

    ``trials`` are records with ``state`` (Optuna's state name), ``value`` and ``steps`` (the steps it trained).
    """
    if target is None:
        return None
    spent = 0
    for trial in trials:
        spent += trial["steps"]
        if trial["state"] == "COMPLETE" and trial["value"] is not None and trial["value"] <= target:
            return spent
    return None


def best_curve(trials: list[dict[str, Any]]) -> list[list[float | None]]:
    """Return [cumulative trial-steps, best complete value so far (None before the first)] after each trial."""
    spent, best, curve = 0, None, []
    for trial in trials:
        spent += trial["steps"]
        if trial["state"] == "COMPLETE" and trial["value"] is not None and math.isfinite(trial["value"]):
            best = trial["value"] if best is None else min(best, trial["value"])
        curve.append([spent, best])
    return curve


def early_point(values: dict[int, float], max_steps: int) -> tuple[int, float] | None:
    """Return (step, objective) of the first validation at or after a third of ``max_steps`` (None: none)."""
    steps = sorted(s for s in values if 3 * s >= max_steps)  # 3 * s >= max_steps: exact for any budget
    return (steps[0], values[steps[0]]) if steps else None


def rank_agreement(trials: list[dict[str, Any]], max_steps: int) -> RankAgreement:
    """Return how far each complete trial's early objective ranks the trials as their end does (``RankAgreement``)."""
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
    return {"step": step, "n": len(early), "rho_value": rounded(spearman(early, value), 3),
            "rho_last": rounded(spearman(early, last), 3), "by_step": by_step}


def stop_text(trial: Any) -> str:
    """Return why a trial ended, in words ('' when it has not): its stop reason (tuner.fleet.endings)."""
    from tuner.fleet.endings import StopReason  # lazy: the tuner, only for studies

    stop = StopReason.of(trial)
    return stop.text() if stop is not None else ""


def close_storage(study: Any) -> None:
    """Close the connection pool of ``study``'s storage (a PostgreSQL bench database is dropped later)."""
    from tuner.study.optuna_api import rdb_engine, storage_of  # lazy: the tuner, only for studies

    engine = rdb_engine(storage_of(study))
    if engine is not None:
        engine.dispose()


# ------------------------------------------------------------------ PostgreSQL


def postgres_url(text: str) -> str:
    """argparse type: a ``postgresql://`` URL (the driver suffix, if any, is dropped)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if text.startswith(prefix):
            return "postgresql://" + text[len(prefix):]
    raise argparse.ArgumentTypeError(f"expected postgresql://USER@HOST:PORT/DB, got {text!r}")


def database_url(admin_url: str, database: str) -> str:
    """Return ``admin_url`` pointing at ``database`` instead."""
    from sqlalchemy.engine import make_url

    return make_url(admin_url).set(database=database).render_as_string(hide_password=False)


def admin_sql(admin_url: str, statement: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the administrative connection, outside a transaction."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as connection:
        connection.execute(statement)


@contextmanager
def fresh_database(admin_url: str, database: str) -> Iterator[str]:
    """Create ``database`` through ``admin_url``, yield its URL, and drop it afterwards whatever happened."""
    admin_sql(admin_url, f'CREATE DATABASE "{database}"')
    try:
        yield database_url(admin_url, database)
    finally:
        admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
