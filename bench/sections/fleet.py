"""bench/fleet.py's record and its section: many simulated workers on one PostgreSQL study."""

from __future__ import annotations

from typing import Any

from harness.format import machine_line, num, table
from harness.results import Entry
from harness.section import Section

P99_GOAL_S = 1.0  # the storage's p99 latency a worker may see per call (issue goal: ask under 1 s)


class FleetRecord(Entry):
    """One run of bench/fleet.py."""

    workers: int
    trials_target: int
    steps: int
    step_seconds: float
    heartbeat_s: float
    grace_s: float
    wall_s: float
    timed_out: bool
    kills: int
    exit_codes: dict[str, int]
    between_trials_s: dict[str, Any]  # n, p50, p90, p99
    report_s: dict[str, Any]
    connections: dict[str, Any]  # peak, median, max_connections
    worker_error_lines: int
    audit: dict[str, Any]  # tuner.fleet.audit: trials, finished, lost, trained_twice, duplicate_params ...
    takeover_s: dict[str, Any]


def lines(entry: dict[str, Any]) -> list[str]:
    """Return the section: the fleet, the latencies, the connections, the lifecycle audit."""
    audit, conn = entry["audit"], entry["connections"]
    out = [f"{entry['workers']} worker processes (the tuner's worker loop, leases and retries; fake trials of "
           f"{entry['steps']} × {entry['step_seconds']} s) on one PostgreSQL study to {entry['trials_target']} "
           f"finished trials, {entry['kills']} workers SIGKILLed and replaced; heartbeat {entry['heartbeat_s']} s, "
           f"grace {entry['grace_s']} s. Wall time {entry['wall_s']} s"
           + (" (timed out)" if entry["timed_out"] else "") + f"; worker exit codes {entry['exit_codes']}.", ""]
    rows = [[name, str(q["n"]), num(q["p50"]), num(q["p90"]), num(q["p99"])]
            for name, q in (("tell + recover + ask (between trials)", entry["between_trials_s"]),
                            ("one intermediate report", entry["report_s"]),
                            ("take-over of a killed worker's trial", entry["takeover_s"]))]
    out += table(["Seconds", "n", "p50", "p90", "p99"], rows)
    out += ["", f"Database connections: peak {conn['peak']}, median {num(conn['median'], 0)}, server limit "
                f"{conn['max_connections']}. Worker log lines mentioning an error: {entry['worker_error_lines']}.",
            "", f"Lifecycle audit: {audit['trials']} trials, {audit['finished']} finished, {audit['retries']} retries; "
                f"lost {audit['lost']}, trained twice {audit['trained_twice']}, duplicate parameters "
                f"{audit['duplicate_params']}.", "", machine_line(entry)]
    return out


def headline(entry: dict[str, Any]) -> str:
    """Return the README's line: the fleet's size, the p99 latency, connections, and what the audit found."""
    audit = entry["audit"]
    return (f"- {entry['workers']} simulated workers on one PostgreSQL study: p99 between trials "
            f"{num(entry['between_trials_s']['p99'])} s (goal < {P99_GOAL_S:g}), peak connections "
            f"{entry['connections']['peak']} of {entry['connections']['max_connections']}, lost {audit['lost']}, "
            f"trained twice {audit['trained_twice']}, duplicate parameters {audit['duplicate_params']}.")


SECTION = Section.of_newest("fleet", "Fleet scale: simulated workers on one study", lines, headline, optional=True)
