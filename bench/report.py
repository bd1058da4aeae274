"""Shared by the bench scripts: print a result as JSON and append it to the results file; describe the machine."""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], results: Path) -> None:
    """Print ``result`` as indented JSON and append it as one line to ``results`` (JSON Lines)."""
    print(json.dumps(result, indent=1))
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")


# What the benches themselves write: a change there says nothing about the code measured.
GENERATED = ("bench/results.jsonl", "docs/RESULTS.md")


def revision(where: Path | None = None) -> str | None:
    """Return the git commit the bench ran on (``+dirty`` when tracked code had changes), None outside git.

    ``where`` is a folder inside the repository (default: this script's). Changes to GENERATED
    files do not count. Read it when the bench starts, not when it ends: the tree may change
    during a long run.
    """
    here = where or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                *(f":(top,exclude){path}" for path in GENERATED)], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


REVISION_AT_START = revision()  # bench/report.py is imported as a bench starts
LOAD_AT_START = os.getloadavg()  # 1, 5, 15-minute load: were other processes sharing the cores?
LOAD_SAMPLE_SECONDS = 15.0


class LoadWatch:
    """The highest 1-minute load average seen while the bench ran, sampled every ``LOAD_SAMPLE_SECONDS``.

    The loads at the start and end alone miss work that came and went in between (a test suite, a
    package install), which is what spoils a timing on two cores.
    """

    def __init__(self) -> None:
        self.peak = LOAD_AT_START[0]
        self._lock = threading.Lock()

    def sample(self) -> float:
        """Read the load now, keep it if highest; return the peak so far."""
        with self._lock:
            self.peak = max(self.peak, os.getloadavg()[0])
            return self.peak

    def _run(self) -> None:
        while True:
            time.sleep(LOAD_SAMPLE_SECONDS)
            self.sample()

    def start(self) -> LoadWatch:
        """Sample in a daemon thread (the bench's own process only: spawned workers import this module too)."""
        if multiprocessing.parent_process() is None:
            threading.Thread(target=self._run, name="load-watch", daemon=True).start()
        return self


LOAD_WATCH = LoadWatch().start()


def machine(device: str) -> dict[str, Any]:
    """Return where a bench ran: platform, CPU count, torch version, the GPU's name (None on CPU), git revision,
    and the load average when it started and ended and its peak in between (above the core count: other work
    shared the machine)."""
    import torch

    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None,
            "revision": REVISION_AT_START, "load_at_start": [round(x, 2) for x in LOAD_AT_START],
            "load_at_end": [round(x, 2) for x in os.getloadavg()], "load_peak": round(LOAD_WATCH.sample(), 2)}
