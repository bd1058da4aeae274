"""What the parent hands a trial's child process (``job.json``) and what the child hands back (``outcome.json``).

The storage URL is not in the job file: it travels in the child's environment
(``SMART_TUNER_STORAGE``, ``tuner.env.STORAGE``, the same variable ``--storage`` defaults to),
so a password is never written to disk.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.fileio import atomic_write_text

# How a child that wrote no outcome says why (its exit status; tuner.trial.child).
CRASH_EXIT_CODE = 86  # an injected crash (tests and drills)
ORPHAN_EXIT_CODE = 87  # its worker died, so it stopped
LEASE_LOST_EXIT_CODE = 88  # its trial is no longer its worker's (tuner.fleet.lease): it stopped and wrote nothing


@dataclass
class TrialJob:
    """Everything the child needs to run one trial."""

    study_name: str
    trial_id: int
    trial_number: int
    run_dir: str
    data: str
    config: dict[str, Any]  # the full TrainConfig
    warm_start: str | None
    objective_metrics: list[str]
    objective_directions: list[str]
    gates: list[dict[str, Any]]
    pruner: dict[str, Any]  # the space's pruner section
    val_interval: int
    max_steps: int
    samples: int
    params: dict[str, Any] = field(default_factory=dict)
    resume: bool = False  # run_dir holds a dead predecessor's checkpoints (tuner.trial.resume): continue from them
    owner: str = ""  # the parent's lease token: the child trains only while it holds the trial (tuner.fleet.lease)

    def write(self, path: Path) -> None:
        """Write the job as JSON to ``path``."""
        atomic_write_text(path, json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> TrialJob:
        """Return the job stored at ``path``."""
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


@dataclass
class Outcome:
    """How a trial ended, written by the child: complete (values), pruned (reason) or failed (reason)."""

    state: str  # "complete" | "pruned" | "failed"
    values: list[float] | None = None
    reason: str | None = None
    step: int | None = None
    best_step: int | None = None
    media: list[str] = field(default_factory=list)  # files in run_dir/media for MLflow and the dashboard
    # Wall times of the child's phases in seconds, and its report count (tuner.trial.child.run); an
    # outcome file written before timings existed reads as {}.
    timings: dict[str, float] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        """Write the outcome as JSON to ``path`` atomically (the parent never reads half a file)."""
        # NaN is not JSON: store it as null and let the parent treat it as not finite.
        data = asdict(self)
        if data["values"] is not None:
            data["values"] = [v if v == v and abs(v) != float("inf") else None for v in data["values"]]
        atomic_write_text(path, json.dumps(data, indent=1))

    @classmethod
    def read(cls, path: Path) -> Outcome | None:
        """Return the outcome at ``path``, or None when the child left none (it crashed or was killed)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("values") is not None:
            data["values"] = [float("nan") if v is None else float(v) for v in data["values"]]
        return cls(**data)
