"""bench/results.jsonl: the fields every entry has, and reading the file.

Each bench appends one JSON line per run: its own record (declared beside its report section in
``bench/sections/<bench>.py``, extending ``Entry``), to which the runner adds ``bench``, ``machine``
and ``command``. Entries are never rewritten; fields added later are missing from older entries,
and the sections read those with a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from typing_extensions import NotRequired


class Machine(TypedDict):
    """Where an entry was measured (harness.machine.Watch.machine)."""

    platform: str
    cpu_count: int | None
    torch: str
    gpu: str | None  # None on the CPU
    revision: str | None  # the git commit, +dirty for changes to tracked code; None outside git
    load_at_start: NotRequired[list[float]]  # 1, 5 and 15-minute load averages; absent in the oldest entries
    load_at_end: NotRequired[list[float]]
    load_peak: NotRequired[float]  # the highest 1-minute load sampled in between; absent before the sampler


class Entry(TypedDict, total=False):
    """The fields the runner adds to every bench's record."""

    bench: str  # the bench's name: bench/<bench>.py wrote it
    machine: Machine
    command: str  # the command line that reproduces it
    dropped: str  # set by hand on an entry that measured a change which was then reverted: why


def read_results(path: Path) -> list[dict[str, Any]]:
    """Return the bench entries of ``path`` (JSON Lines), oldest first; a line that is not JSON is an error."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
    return entries


def of_bench(entries: list[dict[str, Any]], bench: str) -> list[dict[str, Any]]:
    """Return the entries of ``bench``, oldest first."""
    return [e for e in entries if e.get("bench") == bench]


def append(record: dict[str, Any], results: Path) -> None:
    """Print ``record`` as indented JSON and append it as one line to ``results`` (JSON Lines)."""
    print(json.dumps(record, indent=1))
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
