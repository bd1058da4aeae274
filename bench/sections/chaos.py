"""bench/chaos.py's record and its section: killed workers and a database outage, audited."""

from __future__ import annotations

from typing import Any

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section


class ChaosRecord(Entry):
    """One run of bench/chaos.py: what was done to the workers, and what tuner.fleet.audit found."""

    workers: int
    trials_target: int
    max_steps: int
    heartbeat_s: float
    grace_s: float
    kills: int
    outage: str  # "20 s", "skipped: ..." or "not reached"
    workers_started: int
    restarts_after_error_exit: int
    error_exit_codes: list[int]
    wall_s: float
    trials_lost: int
    trials_trained_twice: int
    wrong_resumes: int
    retries: int
    steps_resumed: int
    steps_repeated: int
    trials: int
    finished: int
    findings: list[str]
    goal_met: bool
    run_folder: str


def chaos_section(entry: dict[str, Any]) -> list[str]:
    """Return the report lines of bench/chaos.py's latest entry."""
    rows = [[str(entry["workers"]), str(entry["kills"]), str(entry["outage"]),
             f"{entry['finished']} / {entry['trials_target']}", str(entry["trials_lost"]),
             str(entry["trials_trained_twice"]), str(entry["wrong_resumes"]), str(entry["retries"]),
             str(entry["steps_resumed"]), str(entry["steps_repeated"]), num(entry["wall_s"], 0)]]
    lines = [f"{entry['workers']} workers on one PostgreSQL study of {entry['trials_target']} trials × "
             f"{entry['max_steps']} steps (a checkpoint every 2), a random worker SIGKILLed every 1.5–5 s and "
             "replaced at once, the database stopped half-way for longer than the grace period "
             f"(heartbeat {num(entry['heartbeat_s'])} s, grace {num(entry['grace_s'])} s); audited by "
             "`tuner.fleet.audit` from the runs' timed records. Goal: nothing lost, nothing trained twice, every "
             "retry from the newest checkpoint: " + ("met." if entry["goal_met"] else "**not met**."), ""]
    lines += table(["Workers", "Kills", "Outage", "Finished / target", "Trials lost", "Trained twice",
                    "Wrong resumes", "Retries", "Steps resumed", "Steps repeated", "Wall s"], rows)
    if entry.get("findings"):
        lines += ["", "Findings: " + "; ".join(entry["findings"])]
    return lines + ["", machine_line(entry)]


def headline(entry: dict[str, Any]) -> str:
    return (f"- Chaos: {entry['kills']} random worker kills and a {entry['outage']} database "
            f"outage: {entry['trials_lost']} trials lost, {entry['trials_trained_twice']} trained "
            f"twice, {entry['steps_repeated']} steps repeated after resumes.")



SECTION = Section.of_newest("chaos", "8. Chaos: killed workers and a database outage",
                            chaos_section, headline)
