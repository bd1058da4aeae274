"""Every environment variable the tuner reads (or sets for a trial's child), by name, with its meaning.

Each module reads its variable through the constant here, so a name is spelled once and this
list is the whole story. ``tuner/README.md`` documents the user-facing ones.
"""

from __future__ import annotations

from trainer.console import DEBUG_ENV
from trainer.tracking import LOGGING_LEVEL_ENV, TRACKING_URI_ENV

HOME = "SMART_TUNER_HOME"  # the tuner's home folder (default ./studies); --home overrides it
STORAGE = "SMART_TUNER_STORAGE"  # the study storage URL: --storage's default, and how a trial's child gets the URL
OPTUNA_STORAGE = "OPTUNA_STORAGE"  # Optuna CLI's storage URL variable: used after --storage and $SMART_TUNER_STORAGE
HEARTBEAT_SECONDS = "SMART_TUNER_HEARTBEAT_SECONDS"  # seconds between a running trial's heartbeats (default 30)
GRACE_SECONDS = "SMART_TUNER_GRACE_SECONDS"  # seconds without heartbeat before a trial is failed and retried (120)
DB_RETRY_SECONDS = "SMART_TUNER_DB_RETRY_SECONDS"  # how long a storage call retries (default grace - 2 x heartbeat)
PARENT_PID = "SMART_TUNER_PARENT_PID"  # set by a worker for its trial's child: the child dies with that process
FAULT = "SMART_TUNER_FAULT"  # fault injection for tests and drills, read by the trial worker only
GPU_LOCKS = "SMART_TUNER_GPU_LOCKS"  # folder of the per-GPU locks of --gpus claim (default <home>/gpu-locks)
DEBUG = DEBUG_ENV  # SMART_TUNER_DEBUG=1: print the traceback of an internal error (read by trainer.console)
MLFLOW_TRACKING_URI = TRACKING_URI_ENV  # the MLflow tracking server or store (default: the home's SQLite)
MLFLOW_LOGGING_LEVEL = LOGGING_LEVEL_ENV  # MLflow's own log level; the tuner defaults it to WARNING
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"  # the GPUs a process sees; the tuner sets it per trial with --gpus
TRIALS_PER_GPU = "SMART_TUNER_TRIALS_PER_GPU"  # --trials-per-gpu's default (docker-compose's GPU worker sets it)
OMP_NUM_THREADS = "OMP_NUM_THREADS"  # CPU threads of a trial's child when several trials share a machine
MKL_NUM_THREADS = "MKL_NUM_THREADS"  # ... the same for MKL

__all__ = ["HOME", "STORAGE", "OPTUNA_STORAGE", "HEARTBEAT_SECONDS", "GRACE_SECONDS", "DB_RETRY_SECONDS", "FAULT",
           "PARENT_PID", "GPU_LOCKS", "DEBUG", "MLFLOW_TRACKING_URI", "MLFLOW_LOGGING_LEVEL", "CUDA_VISIBLE_DEVICES",
           "TRIALS_PER_GPU", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]
