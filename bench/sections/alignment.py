"""bench/alignment.py's record and its section: one longer run per text frontend, diagonality per validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.format import machine_line, num, pct, table
from harness.results import Entry, of_bench
from harness.section import Rendered, Section

if TYPE_CHECKING:
    from typing_extensions import NotRequired


class AlignmentRecord(Entry):
    """One run of bench/alignment.py."""

    preset: str
    text_frontend: NotRequired[str]  # absent: characters
    device: str
    steps: int
    utterances: int
    seed: int
    first_step_diagonality_ge_target: int | None
    wall_s_to_target: float | None
    target: float
    median_sec_per_step: float | None
    history: list[dict[str, float]]  # every validation: step, wall_s, tf diagonality and focus, gate BA, mel L1


def alignment_section(entries: list[dict[str, Any]]) -> list[str]:
    """Return the report lines of bench/alignment.py's newest entry per text frontend (characters, phonemes)."""
    newest: dict[str, dict[str, Any]] = {}
    for entry in entries:
        newest[entry.get("text_frontend", "characters")] = entry
    lines: list[str] = []
    for frontend, entry in sorted(newest.items()):
        rows = [[str(h["step"]), num(h["tf_diagonality"]), num(h["tf_focus"]), pct(h["tf_gate_balanced_accuracy"]),
                 num(h["val_mel_postnet_l1"]), num(h["wall_s"], 0)] for h in entry["history"]]
        lines += [f"One longer run of the trainer's defaults (phases off) reading {frontend}, {entry['preset']} "
                  f"preset, seed {entry['seed']}, {entry['utterances']} utterances: first validation with "
                  f"diagonality ≥ {entry['target']} at step {entry['first_step_diagonality_ge_target']}; "
                  f"{num(entry['median_sec_per_step'])} s per step.", ""]
        lines += table(["Step", "tf diagonality", "tf focus", "Gate BA", "Val mel L1", "Wall s"], rows)
        lines += ["", machine_line(entry), ""]
    if len(newest) > 1:
        reached = ", ".join(f"{name} {run['first_step_diagonality_ge_target'] or 'not within ' + str(run['steps'])}"
                            for name, run in sorted(newest.items()))
        every = ", ".join(sorted({str(run["history"][0]["step"]) for run in newest.values() if run["history"]}))
        lines += [f"Steps to teacher-forced diagonality ≥ 0.85 by what the model reads: {reached} (validations "
                  f"every {every} steps, so a count is a multiple of that; one seed each).", ""]
    return lines[:-1] if lines and lines[-1] == "" else lines


def render(entries: list[dict[str, Any]]) -> Rendered:
    return alignment_section(of_bench(entries, "alignment")), []


SECTION = Section("alignment", "Alignment over a longer run", render, optional=True)
