"""Where the tuner keeps its files: one home folder (default ``./studies``).

The home holds the default SQLite study storage, the default MLflow store, the Optuna
artifact store, the trial run folders and the embedded demo. ``SMART_TUNER_HOME`` or the
``--home`` option moves it (tests point it at a temporary folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tuner import env

HOME_ENV = env.HOME


@dataclass(frozen=True)
class Home:
    """Paths inside the tuner's home folder (nothing is created until a command needs it)."""

    root: Path

    @classmethod
    def resolve(cls, explicit: str | Path | None = None) -> Home:
        """Return the home: ``explicit``, else ``$SMART_TUNER_HOME``, else ``./studies`` (made absolute)."""
        chosen = explicit or os.environ.get(HOME_ENV) or "studies"
        return cls(Path(chosen).expanduser().resolve())

    @property
    def optuna_db(self) -> Path:
        """Default SQLite file of Optuna studies."""
        return self.root / "optuna.db"

    @property
    def mlflow_db(self) -> Path:
        """Default SQLite file of the MLflow tracking store."""
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        """Default MLflow artifact root (one sub-folder per experiment)."""
        return self.root / "mlartifacts"

    @property
    def optuna_artifacts(self) -> Path:
        """Optuna artifact store read by optuna-dashboard (plots and audio of trials)."""
        return self.root / "artifacts"

    @property
    def demo(self) -> Path:
        """Cache of the embedded demo (base corpus, base checkpoint, second-voice corpus)."""
        return self.root / "demo"

    def trial_dir(self, study_name: str, trial_number: int) -> Path:
        """Run folder of one trial (config.yaml, metrics.jsonl, checkpoints/, plots, samples)."""
        return self.root / "runs" / safe_name(study_name) / f"trial-{trial_number:04d}"


def home_origin(explicit: str | Path | None) -> str:
    """Return where ``Home.resolve(explicit)`` takes the home from, in words (for "looked in" messages)."""
    if explicit:
        return "--home"
    if os.environ.get(HOME_ENV):
        return f"${HOME_ENV}"
    return "the default: ./studies of the current folder"


def safe_name(name: str) -> str:
    """Return ``name`` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_`` (for folder names).

    The result is never empty, ``.`` or ``..``: a study's folder stays inside ``runs/``.

    >>> safe_name("de voice/v2"), safe_name(".."), safe_name("")
    ('de_voice_v2', '__', '_')
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return safe if safe not in ("", ".", "..") else safe.replace(".", "_") or "_"


def study_name_problem(name: object) -> str | None:
    """Return why ``name`` cannot name a study (one line), or None when it can.

    Empty and blank names, and ``.`` and ``..`` (which name folders, not studies), are refused.
    """
    if not isinstance(name, str) or not name.strip():
        return f"a study name must be a non-empty string, got {name!r}"
    if name.strip() in (".", ".."):
        return f"a study name cannot be {name!r} (it names a folder)"
    return None
