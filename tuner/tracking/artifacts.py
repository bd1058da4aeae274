"""The Optuna artifact store of a home: trial plots and samples the dashboard shows.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from optuna.artifacts import FileSystemArtifactStore, upload_artifact

from tuner.paths import Home

if TYPE_CHECKING:
    from optuna import Trial



_upload_lock = threading.Lock()


def upload_trial_artifacts(home: Home, trial: Trial, files: list[Path]) -> list[str]:
    """Upload ``files`` to the Optuna artifact store of ``home`` for ``trial``; return the artifact ids.

    optuna-dashboard (started with ``--artifact-dir`` on the same folder) shows PNGs and plays WAVs.
    """
    home.optuna_artifacts.mkdir(parents=True, exist_ok=True)
    store = FileSystemArtifactStore(str(home.optuna_artifacts))
    ids = []
    with _upload_lock:
        for path in files:
            if path.is_file():
                ids.append(upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial))
    return ids

