"""bench/objective_noise.py's record and its section: the objective's seed-to-seed spread against a config's effect."""

from __future__ import annotations

from typing import Any

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section

LIMIT = 1 / 3  # the validity check: each arm's seed-to-seed sd at most a third of the gap between the arms


class NoiseRecord(Entry):
    """One run of bench/objective_noise.py."""

    objective: str
    steps: int
    utterances: int
    held_out: int
    arms: dict[str, dict[str, Any]]  # arm -> learning_rate, runs [{seed, value, ...}], mean, sd
    gap: float
    sd_over_gap: float | None


def lines(entry: dict[str, Any]) -> list[str]:
    """Return the section: each arm's values per seed, mean and sd, and the check."""
    ratio = entry["sd_over_gap"]
    out = [f"The tiny base fine-tuned {entry['steps']} steps on a second eSpeak voice ({entry['utterances']} "
           f"utterances, {entry['held_out']} held out), each run's value its best.pt's {entry['objective']} on every "
           "held-out sentence (the final evaluation), per seed:", ""]
    rows = [[arm, num(a["learning_rate"], 6), ", ".join(num(r["value"], 2) for r in a["runs"]), num(a["mean"], 2),
             num(a["sd"], 2)] for arm, a in entry["arms"].items()]
    out += table(["Arm", "Learning rate", "Values (seeds 1, 2, ...)", "Mean", "SD"], rows)
    verdict = ("passes" if ratio is not None and ratio <= LIMIT else "fails")
    out += ["", f"Gap between the arms' means {num(entry['gap'], 2)} dB; the larger SD is {num(ratio)} of it: the "
                f"check (at most {num(LIMIT)}) {verdict}.", "", machine_line(entry)]
    return out


def headline(entry: dict[str, Any]) -> str:
    """Return the README's line: the sd/gap ratio against its limit."""
    ratio = entry["sd_over_gap"]
    return (f"- Objective noise ({entry['objective']}, final evaluation): seed-to-seed SD / gap to a learning rate "
            f"×10 = {num(ratio)} (limit {num(LIMIT)}).")


SECTION = Section.of_newest("objective_noise", "Objective noise: seed against configuration", lines, headline,
                            optional=True)
