"""What the parent hands a trial's child process (``job.json``) and what the child hands back (``outcome.json``).

The job holds only what the child cannot derive: the run's settings (``RunSettings``: the
search-space file and its hash, the preset, the step budget, the corpus, the base checkpoint,
a vocoder chosen on the command line), the trial's identity (study, storage id, number), the
sampled parameters, the run folder and the lease it trains under. The trainer config, the
objective, the quality gates and the pruner are rebuilt from those by the same function the
parent uses (``tuner.trial.setup.TrialSetup``), so the two can never disagree.

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
from tuner.fleet.endings import FAILED, StopReason

# How a child that wrote no outcome says why (its exit status; tuner.trial.child).
CRASH_EXIT_CODE = 86  # an injected crash (tests and drills)
ORPHAN_EXIT_CODE = 87  # its worker died, so it stopped
LEASE_LOST_EXIT_CODE = 88  # its trial is no longer its worker's (tuner.fleet.lease): it stopped and wrote nothing


@dataclass(frozen=True)
class RunSettings:
    """What every trial of one ``run-study`` shares beyond the search-space file: the command's choices."""

    space: str  # the search-space file (absolute path)
    space_sha256: str  # its content when the run began: a child refuses a file changed since
    preset: str
    max_steps: int  # the step budget of every trial
    data: str  # the corpus the trials train on
    warm_start: str | None = None  # the base checkpoint of a fine-tuning study
    vocoder: str | None = None  # --vocoder: replaces the space's fixed vocoder
    vocoder_config: str | None = None
    confirmation: bool = False  # the runs of ``tuner confirm``: the space's confirmation variant (seeds searched)
    held_out: int | None = None  # the trials' val_size when the corpus is too small for the space's (run_study)


@dataclass
class TrialJob:
    """Everything the child needs to run one trial that it cannot derive itself."""

    settings: RunSettings
    study_name: str
    trial_id: int  # the trial's id in the study storage (the child reports through it)
    trial_number: int
    params: dict[str, Any]  # the sampled parameters
    run_dir: str
    owner: str = ""  # the parent's lease token: the child trains only while it holds the trial (tuner.fleet.lease)
    resume: bool = False  # run_dir holds a dead predecessor's checkpoints (tuner.trial.resume): continue from them

    def write(self, path: Path) -> None:
        """Write the job as JSON to ``path``."""
        atomic_write_text(path, json.dumps(asdict(self), indent=1, sort_keys=True))

    @classmethod
    def read(cls, path: Path) -> TrialJob:
        """Return the job stored at ``path``."""
        values = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{**values, "settings": RunSettings(**values["settings"])})


def job_corpus(path: Path) -> str | None:
    """Return the corpus a trial's ``job.json`` names, also in the layout of earlier versions (None if unreadable)."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = values.get("settings", {}).get("data") if isinstance(values.get("settings"), dict) else values.get("data")
    return str(data) if data else None


@dataclass
class Outcome:
    """How a trial ended, written by the child: complete (values), pruned or failed, and why (``stop``)."""

    state: str  # "complete" | "pruned" | "failed"
    stop: StopReason = field(default_factory=lambda: StopReason(FAILED))
    values: list[float] | None = None
    best_step: int | None = None
    media: list[str] = field(default_factory=list)  # files in run_dir/media for MLflow and the dashboard
    # Wall times of the child's phases in seconds, and its report count (tuner.trial.child.run).
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def step(self) -> int | None:
        """The step the trial reached."""
        return self.stop.step

    def write(self, path: Path) -> None:
        """Write the outcome as JSON to ``path`` atomically (the parent never reads half a file)."""
        # NaN is not JSON: store it as null and let the parent treat it as not finite.
        data = asdict(self)
        data["stop"] = self.stop.to_attr()
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
        data["stop"] = StopReason.from_attr(data.get("stop")) or StopReason(FAILED, "the outcome names no reason")
        return cls(**data)
