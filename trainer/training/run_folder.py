"""A run folder: where a training run keeps its config, metrics log, checkpoints and plots.

Every record a run writes goes through ``RunFolder.append_metrics`` into ``metrics.jsonl``,
one JSON line each, with its ``kind``: ``start``, ``train``, ``val``, ``quality`` (a controller
decision), ``event`` and, last, ``end`` (why the run ended).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.config import config_from_stored
from trainer.yamlio import safe_load

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["RunFolder", "config_for_resume"]


class RunFolder:
    """Paths inside a run folder: config.yaml, metrics.jsonl, checkpoints/{last,best,good,step_N}.pt, plots/."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.checkpoints = self.root / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.good = self.checkpoints / "good.pt"  # last validation the quality controller found healthy
        self.plots = self.root / "plots"

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line stamped with its wall-clock ``time`` (unix seconds).

        A line is written whole in one call, so readers never see half a record; the time lets a
        reader order the records of different runs (a trial's and its retry's, say).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({**record, "time": round(time.time(), 3)}, sort_keys=True) + "\n")


def config_for_resume(run_dir: str | Path, max_steps: int | None = None) -> TrainConfig:
    """Return the config saved in ``run_dir`` (optionally with a new ``max_steps``) for ``--resume``."""
    values = safe_load(RunFolder(run_dir).config.read_text(encoding="utf-8"))
    if max_steps is not None:
        values["max_steps"] = max_steps
    return config_from_stored(values, source=str(RunFolder(run_dir).config))
