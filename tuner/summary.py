"""Text tables of a study: its trials (``tuner status``, end of ``run-study``) and its best trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from trainer import metric_registry

if TYPE_CHECKING:
    from optuna import Study


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

    The metric columns are the registry's shown metrics (``trainer.metric_registry.shown``,
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
        reason = attrs.get("prune_reason") or attrs.get("fail_reason") or ""
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
        best = study.best_trial
        lines = [f"best trial #{best.number}: {objective[0]} {best.value:.4f}"]
        lines += [f"  {name}: {_fmt(value)}" for name, value in best.params.items()]
        if "mlflow_run" in best.user_attrs:
            lines.append(f"  mlflow: {best.user_attrs['mlflow_run']}")
        return lines
    lines = [f"Pareto front ({', '.join(objective)}):"]
    for trial in study.best_trials:
        shown = ", ".join(f"{m} {v:.4f}" for m, v in zip(objective, trial.values, strict=False))
        params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        lines.append(f"  #{trial.number}: {shown}  ({params})")
    return lines
