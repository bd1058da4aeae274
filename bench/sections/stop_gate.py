"""bench/stop_gate.py's record and its section: adaptive against fixed stop threshold, per checkpoint step."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, pct, table
from harness.results import Entry, of_bench
from harness.section import Rendered, Section


class CheckpointFigures(TypedDict):
    """One checkpoint's free-running stop figures with each threshold kind (fr_ prefixes dropped)."""

    checkpoint: str
    step: int
    progress: float
    fixed: dict[str, float]  # stop_error, early_stop_rate, run_on_rate, hit_max_rate, diagonality
    adaptive: dict[str, float]


class StopGateRecord(Entry):
    """One run of bench/stop_gate.py."""

    utterances: int
    corpus_seed: int
    runs: list[CheckpointFigures]


def stop_gate_section(entries: list[dict[str, Any]]) -> list[str]:
    """Return the report lines of every bench/stop_gate.py entry (one row per checkpoint step)."""
    runs = {run["step"]: (run, entry) for entry in entries for run in entry["runs"]}
    rows = []
    for step in sorted(runs):
        run, _ = runs[step]
        for kind in ("fixed", "adaptive"):
            f = run[kind]
            rows.append([str(step), kind, num(f["diagonality"]), pct(f["stop_error"]), pct(f["early_stop_rate"]),
                         pct(f["run_on_rate"]), pct(f["hit_max_rate"])])
    lines = [f"{entries[-1]['utterances']} unseen sentences synthesised free-running with checkpoints of one tiny run, "
             "once with the fixed threshold 0.5 and once with the adaptive one.", ""]
    lines += table(["Checkpoint step", "Threshold", "fr diagonality", "Stop error", "Early stops", "Run-ons",
                    "Hit max"], rows)
    commands = sorted({e["command"] for e in entries})
    return lines + ["", machine_line(entries[-1]), "", "All commands: " + "; ".join(f"`{c}`" for c in commands)]


def render(entries: list[dict[str, Any]]) -> Rendered:
    return stop_gate_section(of_bench(entries, "stop_gate")), []


SECTION = Section("stop_gate", "Stop gate: adaptive against fixed threshold", render,
                  run="python bench/stop_gate.py CKPT")
