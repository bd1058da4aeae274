"""``tuner report``: one page a practitioner would rather look at than read: what the study found, and how sure.

The page (``DIR/index.md``, Markdown with PNG figures beside it) shows, in order: the confirmed
winner against the defaults with its interval (or the best trial, marked unconfirmed), the
optimisation history, the learning curves the pruner judged, the parameters' importances and
slices (Optuna's matplotlib figures), the confirmation's paired differences seed by seed, a
table of the best trials, and their alignment pictures and samples (copied from their run
folders when they are on this machine). A figure that cannot be drawn for this study (too few
trials for importances, say) is left out with one line saying why, never a failed report.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from trainer.fileio import atomic_write_text
from tuner.evidence.confirm import CONFIRMATION_ATTR, confirmed_winner, outcome_lines, winner_trial
from tuner.fleet.endings import StopReason

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

__all__ = ["FIGURES", "write_report"]

TOP = 5  # trials in the table and the media section


def _figure(plot: Callable[[], Any]) -> Figure:
    """Return the matplotlib figure Optuna's ``plot`` draws (it returns axes, or an array of them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib figures experimental
        drawn = plot()
    first = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    return first.get_figure()


def _history(study: optuna.Study) -> Figure:
    from optuna.visualization.matplotlib import plot_optimization_history  # lazy: matplotlib, for reports only

    return _figure(lambda: plot_optimization_history(study))


def _curves(study: optuna.Study) -> Figure:
    from optuna.visualization.matplotlib import plot_intermediate_values  # lazy: as above

    return _figure(lambda: plot_intermediate_values(study))


def _importances(study: optuna.Study) -> Figure:
    from optuna.visualization.matplotlib import plot_param_importances  # lazy: as above

    return _figure(lambda: plot_param_importances(study))


def _slices(study: optuna.Study) -> Figure:
    from optuna.visualization.matplotlib import plot_slice  # lazy: as above

    return _figure(lambda: plot_slice(study))


def _confirmation(study: optuna.Study) -> Figure:
    """The confirmation's paired differences (candidate − defaults), one dot per seed, with the 95 % interval."""
    import matplotlib.pyplot as plt  # lazy: as above

    outcome = study.user_attrs[CONFIRMATION_ATTR]
    entries = [c for c in outcome["candidates"] if c.get("comparison")]
    if not entries:
        raise ValueError("no candidate has enough finished runs to compare")
    figure, axes = plt.subplots(figsize=(7, 1.2 + 0.7 * len(entries)))
    for row, entry in enumerate(entries):
        comparison = entry["comparison"]
        axes.scatter(comparison["differences"], [row] * len(comparison["differences"]), color="tab:blue", s=18)
        low, high = comparison["ci95"]
        axes.plot([low, high], [row, row], color="black", linewidth=2)
        axes.plot([comparison["estimate"]], [row], marker="|", color="black", markersize=14)
    axes.axvline(0.0, color="tab:red", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(entries)), [e["label"] for e in entries])
    better = "left" if outcome["direction"] == "minimize" else "right"
    axes.set_xlabel(f"candidate − defaults, per seed (better: {better}); bar: Hodges-Lehmann 95 % interval")
    figure.tight_layout()
    return figure


# name -> (title, drawing, when it applies)
FIGURES: dict[str, tuple[str, Callable[[optuna.Study], Figure], Callable[[optuna.Study], bool]]] = {
    "history": ("Optimisation history", _history, lambda s: True),
    "curves": ("Learning curves (the values the pruner judged)", _curves, lambda s: len(s.directions) == 1),
    "importances": ("Parameter importances", _importances, lambda s: True),
    "slices": ("Slices: each parameter against the objective", _slices, lambda s: True),
    "confirmation": ("Confirmation: the candidates against the defaults, seed by seed", _confirmation,
                     lambda s: CONFIRMATION_ATTR in s.user_attrs),
}


def _draw(study: optuna.Study, out: Path) -> list[str]:
    """Draw every figure that applies into ``out``; return its Markdown (a figure, or why it is missing)."""
    import matplotlib  # lazy: as above

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    lines = []
    for name, (title, draw, applies) in FIGURES.items():
        if not applies(study):
            continue
        lines += [f"## {title}", ""]
        try:
            figure = draw(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:  # too few trials or values for this figure
            lines += [f"(not drawn for this study: {str(err).splitlines()[0][:200]})", ""]
            continue
        figure.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(figure)
        lines += [f"![{title}]({name}.png)", ""]
    return lines


def _headline(study: optuna.Study, objective: list[str]) -> list[str]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    lines = [f"# Study {study.study_name}", "",
             f"{len(study.trials)} trials, {len(complete)} complete; objective {', '.join(objective)}.", ""]
    if not complete or len(study.directions) != 1:
        return lines
    best = winner_trial(study)
    confirmed = confirmed_winner(study) is not None
    params = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best.params.items())
    lines += [f"**{'Confirmed winner' if confirmed else 'Best trial (not confirmed)'}: trial {best.number}**, "
              f"{objective[0]} {best.value:.4g}; {params}", ""]
    outcome = study.user_attrs.get(CONFIRMATION_ATTR)
    lines += [f"    {line}" for line in outcome_lines(outcome, objective)] if outcome else [
        "Not confirmed on other seeds: `tuner confirm` retrains it and the defaults on paired seeds."]
    return lines + [""]


def _best_trials(study: optuna.Study, out: Path, objective: list[str]) -> list[str]:
    """A table of the best trials and their pictures and samples (copied beside the page when they are here)."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    if len(study.directions) != 1 or not complete:
        return []
    sign = 1.0 if study.direction.name == "MINIMIZE" else -1.0
    top = sorted(complete, key=lambda t: sign * float(t.value or 0.0))[:TOP]
    names = list(top[0].params)
    lines = ["## The best trials", "", f"| trial | {objective[0]} | " + " | ".join(names) + " | stopped |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for trial in top:
        stop = StopReason.of(trial)
        lines.append(f"| {trial.number} | {trial.value:.4g} | "
                     + " | ".join(f"{trial.params.get(n):.4g}" if isinstance(trial.params.get(n), float)
                                  else str(trial.params.get(n)) for n in names)
                     + f" | {stop.kind.replace('_', ' ') if stop else '-'} |")
    lines.append("")
    for trial in top:
        media = Path(trial.user_attrs.get("run_dir", "")) / "media"
        shown = [name for name in ("alignment.png", "sample-1.wav") if (media / name).is_file()]
        if not shown:
            continue
        lines += [f"### Trial {trial.number}", ""]
        for name in shown:
            local = f"trial-{trial.number}-{name}"
            shutil.copy2(media / name, out / local)
            lines.append(f"![alignment of trial {trial.number}]({local})" if name.endswith(".png")
                         else f"[listen: a held-out sentence of trial {trial.number}]({local})")
        lines.append("")
    return lines


def write_report(study: optuna.Study, out: Path) -> Path:
    """Write the study's report into ``out`` (made if missing); return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    objective = study.user_attrs.get("objective") or ["value"]
    lines = _headline(study, objective) + _draw(study, out) + _best_trials(study, out, objective)
    page = out / "index.md"
    atomic_write_text(page, "\n".join(lines).rstrip() + "\n")
    return page
