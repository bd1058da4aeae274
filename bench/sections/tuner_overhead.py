"""bench/tuner_overhead.py's record and its section: a trial's time outside training, per storage and worker count."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section


class OverheadRow(TypedDict):
    """One (storage, workers) configuration: medians over its trials, in seconds."""

    storage: str
    workers: int
    trials: int
    study_wall_s: float
    trial_total_s_median: float | None
    trial_total_s_p90: float | None
    train_s_median: float | None
    overhead_s_median: float | None
    overhead_parts_s_median: dict[str, float | None]  # process_start, parent_before_child, media, ...
    report_call_ms_median: float | None
    report_calls: int


class TunerOverheadRecord(Entry):
    """One run of bench/tuner_overhead.py."""

    trials_per_config: int
    max_steps: int
    rows: list[OverheadRow]
    skipped: list[str]  # configurations not run, with why


def overhead_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of bench/tuner_overhead.py's latest entry."""
    rows = []
    for r in entry["rows"]:
        parts = ", ".join(f"{k.replace('_', ' ')} {num(v, 2)}" for k, v in r["overhead_parts_s_median"].items())
        rows.append([r["storage"], str(r["workers"]), str(r["trials"]), num(r["trial_total_s_median"], 2),
                     num(r["train_s_median"], 2), num(r["overhead_s_median"], 2), parts,
                     num(r["report_call_ms_median"], 1), num(r["study_wall_s"], 0)])
    lines = [f"Measured with bench/tuner_overhead.py: {entry['trials_per_config']} trials of {entry['max_steps']} "
             "steps per configuration; overhead = a trial's wall time in Optuna (start to finish) minus its "
             "training. Medians per trial, in seconds.", ""]
    lines += table(["Storage", "Workers", "Trials", "Trial total", "Training", "Overhead", "Overhead parts",
                    "Report + prune call (ms)", "Study wall s"], rows)
    lines += ["", machine_line(entry)]
    return lines


def headline(entry: dict[str, Any]) -> str:
    """Return the README line: the first configuration's overhead per trial and per report call."""
    first = entry["rows"][0]
    return (f"- Tuner overhead: {num(first['overhead_s_median'], 1)} s per trial outside training "
            f"({first['storage']}, {first['workers']} worker), "
            f"{num(first['report_call_ms_median'], 1)} ms per report + prune call.")



SECTION = Section.of_newest("tuner_overhead", "5. Tuner overhead",
                            overhead_section, headline)
