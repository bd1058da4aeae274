"""bench/study_efficiency.py's record and its section: the same study with pruning on and off."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section


class StudyFigures(TypedDict):
    """One study of a repetition (bench/study_efficiency.py study_record)."""

    best: float | None  # the lowest objective of a complete trial
    trial_steps_total: int
    trial_steps_to_unpruned_best: int | None  # in trial order; None: never reached
    complete: int
    pruned: int
    wall_s: float | None


class Repetition(TypedDict):
    rep: int
    sampler_seed: int
    pruned: StudyFigures
    unpruned: StudyFigures


class StudyEfficiencyRecord(Entry):
    """One run of bench/study_efficiency.py: every repetition, and medians over them."""

    trials: int
    max_steps: int
    reps: list[Repetition]
    summary: dict[str, float | None]  # median_{best,steps_to_unpruned_best,trial_steps_total}_{pruned,unpruned}


def study_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of bench/study_efficiency.py's latest entry."""
    rows = []
    for rep in entry["reps"]:
        for mode in ("pruned", "unpruned"):
            r = rep[mode]
            rows.append([str(rep["rep"]), "on" if mode == "pruned" else "off", num(r["best"], 4),
                         str(r["trial_steps_total"]), num(r["trial_steps_to_unpruned_best"]) if
                         r["trial_steps_to_unpruned_best"] is not None else "never",
                         f"{r['complete']} / {r['pruned']}", num(r["wall_s"], 0)])
    s = entry["summary"]
    lines = [f"Measured with bench/study_efficiency.py: {entry['trials']} trials of at most {entry['max_steps']} "
             "steps per study, the same sampler seed with pruning on and off, three repetitions.", ""]
    lines += table(["Rep", "Pruning", "Best objective", "Trial-steps spent", "Trial-steps to the unpruned best",
                    "Complete / pruned", "Wall s"], rows)
    lines += ["", f"Medians: best {num(s['median_best_pruned'], 4)} with pruning, {num(s['median_best_unpruned'], 4)} "
                  f"without; trial-steps spent {num(s['median_trial_steps_total_pruned'])} vs "
                  f"{num(s['median_trial_steps_total_unpruned'])}; trial-steps to reach the unpruned best "
                  f"{num(s['median_steps_to_unpruned_best_pruned'])} vs "
                  f"{num(s['median_steps_to_unpruned_best_unpruned'])}.", "", machine_line(entry)]
    return lines


def headline(entry: dict[str, Any]) -> str:
    """Return the README line of bench/study_efficiency.py's latest entry."""
    s = entry["summary"]
    return (f"- Pruning: {num(s['median_trial_steps_total_pruned'])} trial-steps per study against "
            f"{num(s['median_trial_steps_total_unpruned'])} without, best objective "
            f"{num(s['median_best_pruned'], 4)} against {num(s['median_best_unpruned'], 4)} "
            "(medians of three repetitions).")



SECTION = Section.of_newest("study_efficiency", "4. Study efficiency: pruning on and off",
                            study_section, headline)
