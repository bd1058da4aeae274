"""Shared by the bench scripts: print a result as JSON and append it to the results file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], results: Path) -> None:
    """Print ``result`` as indented JSON and append it as one line to ``results`` (JSON Lines)."""
    print(json.dumps(result, indent=1))
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(result) + "\n")
