"""Where a bench ran: the git revision it measured, the load on the machine while it ran, the machine note."""

from __future__ import annotations

import multiprocessing
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

# What the benches themselves write: a change there says nothing about the code measured.
GENERATED = ("bench/results.jsonl", "docs/RESULTS.md")
LOAD_SAMPLE_SECONDS = 15.0


def revision(where: Path | None = None) -> str | None:
    """Return the git commit the bench ran on (``+dirty`` when tracked code had changes), None outside git.

    ``where`` is a folder inside the repository (default: this module's). Changes to GENERATED
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


class LoadWatch:
    """The highest 1-minute load average seen while the bench ran, sampled every ``LOAD_SAMPLE_SECONDS``.

    The loads at the start and end alone miss work that came and went in between (a test suite, a
    package install), which is what spoils a timing on two cores.
    """

    def __init__(self) -> None:
        self.at_start = os.getloadavg()  # 1, 5, 15-minute load: were other processes sharing the cores?
        self.peak = self.at_start[0]
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
        """Sample in a daemon thread (the bench's own process only, not the workers it spawns)."""
        if multiprocessing.parent_process() is None:
            threading.Thread(target=self._run, name="load-watch", daemon=True).start()
        return self


class Watch:
    """What a bench notes as it starts (the revision, the load) and reads again at its end (the machine)."""

    def __init__(self) -> None:
        self.revision = revision()
        self.load = LoadWatch().start()

    def machine(self, device: str) -> dict[str, Any]:
        """Return where the bench ran: platform, CPU count, torch version, the GPU's name (None on CPU), git
        revision, and the load average when it started and ended and its peak in between (above the core count:
        other work shared the machine)."""
        import torch

        return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None,
                "revision": self.revision, "load_at_start": [round(x, 2) for x in self.load.at_start],
                "load_at_end": [round(x, 2) for x in os.getloadavg()], "load_peak": round(self.load.sample(), 2)}
