"""bench/speedup.py's record and its section: the training step of this code against an earlier revision's."""

from __future__ import annotations

from typing import Any, TypedDict

from harness.format import machine_line, num, table
from harness.results import Entry, of_bench
from harness.section import Rendered, Section


class RevisionFigures(TypedDict):
    """One revision's step over its rounds."""

    median_sec_per_step: float
    mel_frames_per_s: float  # the median over rounds
    each_run_mel_frames_per_s: list[float]


class ThreadRow(TypedDict):
    threads: str  # "preset" (each revision's own), "default" (torch's) or a count
    baseline: RevisionFigures
    worktree: RevisionFigures
    frames_per_s_ratio: float  # this code's mel frames/s over the baseline's


class SpeedupRecord(Entry):
    """One run of bench/speedup.py."""

    preset: str
    batch_size: int
    steps_timed: int
    rounds: int
    baseline_revision: str
    text_frontend: str
    utterances: int
    omp_wait_policy: str
    rows: list[ThreadRow]
    wall_s: float


SPEEDUP_TARGET = 2.3  # the tiny step's speed goal: mel frames/s against the code before the speed work


def speedup_threads(threads: str | int) -> str:
    """Return how a bench/speedup.py thread setting reads in a sentence."""
    if threads == "preset":
        return "each revision's own thread setting"
    if threads == "default":
        return "torch's default threads in both"
    return f"{threads} thread{'' if str(threads) == '1' else 's'} in both"


def speedup_section(entries: list[dict[str, Any]]) -> list[str]:
    """Return the report lines of every bench/speedup.py entry: this code's step against an earlier revision's."""
    lines = ["bench/speedup.py trains the checkout and an earlier revision alternately in one run on one machine "
             "(fresh processes, same corpus and settings, both reading characters), so machine-to-machine "
             f"differences drop out. The goal for the tiny preset is {SPEEDUP_TARGET}× the mel frames/s of the code "
             "before the speed work.", ""]
    for number, entry in enumerate(entries):
        rows = []
        for row in entry["rows"]:
            base, ours = row["baseline"], row["worktree"]
            rows.append([str(row["threads"]), num(base["median_sec_per_step"]), num(base["mel_frames_per_s"], 0),
                         num(ours["median_sec_per_step"]), num(ours["mel_frames_per_s"], 0),
                         f"{num(row['frames_per_s_ratio'], 2)}×",
                         ", ".join(num(v, 0) for v in base["each_run_mel_frames_per_s"]) + " / "
                         + ", ".join(num(v, 0) for v in ours["each_run_mel_frames_per_s"])])
        lines += ([""] if number else []) + [
            f"{entry['preset']} preset, batch {entry['batch_size']}, {entry['steps_timed']} steps timed, "
            f"{entry['rounds']} rounds, this code at {entry['machine'].get('revision') or '?'} against baseline "
            f"{entry['baseline_revision']}, OpenMP wait policy "
            f"{entry.get('omp_wait_policy', '?')}:", ""]
        lines += table(["Threads", "Baseline s/step", "Baseline mel frames/s", "This code s/step",
                        "This code mel frames/s", "Ratio", "Each round (baseline / this code)"], rows)
        lines += ["", machine_line(entry)]
    return lines


def headline(entry: dict[str, Any]) -> str:
    """Return the README line of the newest bench/speedup.py entry: each thread setting's ratio against the goal."""
    ratios = ", ".join(f"{num(row['frames_per_s_ratio'], 2)}× ({speedup_threads(row['threads'])})"
                       for row in entry["rows"])
    return (f"- Speed ({entry['preset']} preset, CPU, batch {entry['batch_size']}) against the code "
            f"before the speed work, in one run on one machine: {ratios} the mel frames/s "
            f"(goal {SPEEDUP_TARGET}×).")


def render(entries: list[dict[str, Any]]) -> Rendered:
    mine = of_bench(entries, "speedup")
    return speedup_section(mine), [headline(mine[-1])]


SECTION = Section("speedup", "The training step against the code before the speed work", render, optional=True)
