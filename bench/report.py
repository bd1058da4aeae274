"""What the bench scripts imported from here, now in bench/harness/ (the machine note, the results file).

Kept while the last scripts move to the harness's runner: as before, the revision and the load are
read as a script imports this module, when the bench starts.
"""

from __future__ import annotations

from typing import Any

from harness.machine import GENERATED, LoadWatch, Watch, revision  # noqa: F401
from harness.results import append as emit  # noqa: F401

_WATCH = Watch()


def machine(device: str) -> dict[str, Any]:
    """Return where the bench ran (harness.machine.Watch.machine)."""
    return _WATCH.machine(device)
