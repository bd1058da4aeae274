"""A study's trials for people (tables: ``tuner status``, end of ``run-study``; the best trial) and for
machines (``tuner status --format json|csv``)."""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from trainer.evaluation import metric_registry
from tuner.evidence.confirm import CONFIRMATION_ATTR, confirmed_winner, outcome_lines, winner_trial
from tuner.fleet.endings import StopReason

if TYPE_CHECKING:
    from optuna import Study
    from optuna.trial import FrozenTrial


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def trials_table(study: Study) -> str:
    """Return a table of the study's trials: number, state, value(s), step, shown metrics, params, reason.

    The metric columns are the registry's shown metrics (``trainer.evaluation.metric_registry.shown``,
    headed by their labels) that some trial's ``last_metrics`` holds.
    """
    trials = study.get_trials(deepcopy=False)
    names: list[str] = []
    for trial in trials:
        for name in trial.params:
            if name not in names:
                names.append(name)
    objective = study.user_attrs.get("objective") or ["value"]
    shown = [m for m in metric_registry.shown()
             if any(m.name in t.user_attrs.get("last_metrics", {}) for t in trials)]
    header = ["#", "state", *objective, "step", *(m.label or m.name for m in shown), *names, "reason"]
    rows = []
    for trial in trials:
        values = trial.values or [None] * len(objective)
        attrs = trial.user_attrs
        last = attrs.get("last_metrics", {})
        stop = StopReason.of(trial)
        reason = stop.text() if stop is not None else ""
        rows.append([str(trial.number), trial.state.name, *(_fmt(v) for v in values),
                     _fmt(attrs.get("last_step")), *(_fmt(last.get(m.name)) for m in shown),
                     *(_fmt(trial.params.get(n)) for n in names), reason[:90]])
    return _table(header, rows)


def counts_line(study: Study) -> str:
    """Return ``N trials: complete N, pruned N, failed N, running N, waiting N``."""
    trials = study.get_trials(deepcopy=False)
    parts = [f"{state.name.lower()} {sum(t.state == state for t in trials)}"
             for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING,
                           TrialState.WAITING)]
    return f"{len(trials)} trials: " + ", ".join(parts)


def best_lines(study: Study) -> list[str]:
    """Return lines describing the best trial (one objective) or the Pareto front (several)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return ["no complete trial yet"]
    objective = study.user_attrs.get("objective") or ["value"]
    if len(study.directions) == 1:
        best = winner_trial(study)
        confirmed = study.user_attrs.get(CONFIRMATION_ATTR)
        title = "confirmed winner" if confirmed_winner(study) is not None else "best trial"
        lines = [f"{title} #{best.number}: {objective[0]} {best.value:.4f}"]
        lines += [f"  {name}: {_fmt(value)}" for name, value in best.params.items()]
        if "mlflow_run" in best.user_attrs:
            lines.append(f"  mlflow: {best.user_attrs['mlflow_run']}")
        if confirmed:
            lines += outcome_lines(confirmed, objective)
        else:
            lines.append("  not confirmed on other seeds yet: `tuner confirm` retrains it against the defaults")
        return lines
    lines = [f"Pareto front ({', '.join(objective)}):"]
    for trial in study.best_trials:
        shown = ", ".join(f"{m} {v:.4f}" for m, v in zip(objective, trial.values, strict=False))
        params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        lines.append(f"  #{trial.number}: {shown}  ({params})")
    return lines


# The trial user attributes `tuner status --format json|csv` carries: what decided the trial and
# where its files and runs are. Left out: MLflow's internal ids (mlflow_run links the run) and
# `timing` (bench/tuner_overhead.py reads it from the study).
STATUS_ATTRS = ("last_step", "best_step", "last_metrics", "stop_reason", "run_dir", "mlflow_run",
                "worker", "gpu", "retry_of", "retries_left", "resumed_from")


def _plain(value: Any) -> Any:
    """Return ``value`` with every non-finite float as None, recursively (JSON has no NaN or Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def trial_records(study: Study) -> list[dict[str, Any]]:
    """Return one JSON-ready dict per trial, in trial order.

    Keys: ``number``; ``state`` (COMPLETE, PRUNED, FAIL, RUNNING, WAITING); ``values`` (the
    objective values in the space's order, None until complete); ``params``; ``datetime_start``
    and ``datetime_complete`` (ISO 8601, local time, None when not yet); ``duration_s`` (seconds);
    ``user_attrs`` (those of ``STATUS_ATTRS`` the trial has; ``stop_reason`` is ``{"kind", "detail",
    "step"}``, ``tuner.fleet.endings``, and a pruned or failed trial also has its text as ``prune_reason`` or
    ``fail_reason``, the keys earlier versions wrote). Non-finite numbers are None.
    """
    records = []
    for trial in study.get_trials(deepcopy=False):
        start, end = trial.datetime_start, trial.datetime_complete
        records.append(_plain({
            "number": trial.number,
            "state": trial.state.name,
            "values": list(trial.values) if trial.values is not None else None,
            "params": dict(trial.params),
            "datetime_start": start.isoformat() if start else None,
            "datetime_complete": end.isoformat() if end else None,
            "duration_s": round((end - start).total_seconds(), 3) if start and end else None,
            "user_attrs": _status_attrs(trial),
        }))
    return records


def _status_attrs(trial: FrozenTrial) -> dict[str, Any]:
    """Return the ``user_attrs`` of a trial's status record (see ``trial_records``)."""
    attrs = {k: trial.user_attrs[k] for k in STATUS_ATTRS if k in trial.user_attrs}
    stop = StopReason.of(trial)
    if stop is not None:
        attrs["stop_reason"] = stop.to_attr()
        if trial.state in (TrialState.PRUNED, TrialState.FAIL):
            attrs["prune_reason" if trial.state == TrialState.PRUNED else "fail_reason"] = stop.text()
    return attrs


def trials_csv(study: Study) -> str:
    """Return the trials as CSV text with a header row, one row per trial.

    Columns: number, state, the objective values (``value``, or ``values_0``, ``values_1``, ... with
    two objectives, as Optuna's data frames name them), datetime_start, datetime_complete,
    duration_s, last_step, best_step, ``params_NAME`` per parameter, then the last validation's
    figures (``last_metrics``) under their registry names, then stop_kind and stop_reason (how the
    trial ended, ``tuner.fleet.endings``), prune_reason and fail_reason (the same text, as earlier
    versions named it), run_dir and mlflow_run. An absent value is an empty cell.
    """
    records = trial_records(study)
    n_values = len(study.directions)
    value_columns = ["value"] if n_values == 1 else [f"values_{i}" for i in range(n_values)]
    params: list[str] = []
    seen: set[str] = set()
    for record in records:
        for name in record["params"]:
            if name not in params:
                params.append(name)
        seen.update(record["user_attrs"].get("last_metrics") or {})
    order = [m.name for m in metric_registry.all_metrics()]
    metrics = [n for n in order if n in seen] + sorted(seen - set(order))
    trailing = ["prune_reason", "fail_reason", "run_dir", "mlflow_run"]
    stops = [StopReason.from_attr(record["user_attrs"].get("stop_reason")) for record in records]
    header = ["number", "state", *value_columns, "datetime_start", "datetime_complete", "duration_s", "last_step",
              "best_step", *(f"params_{n}" for n in params), *metrics, "stop_kind", "stop_reason", *trailing]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for record, stop in zip(records, stops, strict=True):
        attrs = record["user_attrs"]
        last = attrs.get("last_metrics") or {}
        values = record["values"] or [None] * n_values
        row = [record["number"], record["state"], *values, record["datetime_start"], record["datetime_complete"],
               record["duration_s"], attrs.get("last_step"), attrs.get("best_step"),
               *(record["params"].get(n) for n in params), *(last.get(n) for n in metrics),
               stop.kind if stop else None, stop.text() if stop else None, *(attrs.get(n) for n in trailing)]
        writer.writerow(["" if cell is None else cell for cell in row])
    return out.getvalue()
