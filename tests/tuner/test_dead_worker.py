"""A worker SIGKILLed mid-trial: its trial is failed after the grace period and retried by the next
worker, which resumes the training from the dead trial's last checkpoint, not from step 0.

Real processes: ``tuner run-study`` (the parent, which holds the heartbeat) is killed, not just its
trial's child; heartbeat and grace are shortened through the environment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def checkpoint_step(path: Path) -> int:
    """Return the optimiser step a trainer checkpoint was saved at."""
    from trainer.model.checkpoint import load_checkpoint

    return int(load_checkpoint(path)["position"]["step"])


def _checkpoint_step(run_dir: Path) -> int:
    """Return the step of the run's last.pt (0 while there is none; the trainer renames it into place whole)."""
    path = run_dir / "checkpoints" / "last.pt"
    return checkpoint_step(path) if path.is_file() else 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return not re.search(r"^State:\s+Z", state, re.M)  # a zombie nobody reaped is dead too


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_killed_worker_trial_resumes_from_its_checkpoint(tmp_path: Path, tuner_home: Path, short_corpus: Path,
                                                         fast_space_writer) -> None:
    import optuna
    from optuna.trial import TrialState

    space = fast_space_writer(tmp_path, study="dead", max_steps=8, samples=0, gates="[]")
    # A checkpoint every 2 steps, so the kill lands after one.
    space.write_text(space.read_text().replace("fixed:\n", "fixed:\n  checkpoint_interval: 2\n"))
    env = {**os.environ, "SMART_TUNER_HEARTBEAT_SECONDS": "1", "SMART_TUNER_GRACE_SECONDS": "600"}
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(short_corpus),
               "--trials", "2", "--no-mlflow"]
    first_run = tuner_home / "runs" / "dead" / "trial-0000"

    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait(lambda: _checkpoint_step(first_run) >= 4 or first.poll() is not None, 240,
              "trial 0 never saved a checkpoint at step 4")
        assert first.poll() is None, first.communicate()[0]
        child = int(re.search(r"worker: trial 0, pid (\d+)", (first_run / "worker.log").read_text()).group(1))
        first.send_signal(signal.SIGKILL)  # the parent: no outcome, no cleanup, no more heartbeats
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    # The orphaned trainer dies with its worker (the kernel kills it), so nothing writes to the dead run any more.
    _wait(lambda: not _alive(child), 5, "the dead worker's trainer kept running")
    saved_step = checkpoint_step(first_run / "checkpoints" / "last.pt")
    assert saved_step >= 4

    # At once, not after the grace period: the dead worker ran on this machine, and its process is gone.
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "trial 0: worker lost: its process" in second.stderr and "on this machine is gone" in second.stderr
    assert f"trial 1 retries trial 0: resuming from its last.pt at step {saved_step}" in second.stdout

    trials = optuna.load_study(study_name="dead", storage=f"sqlite:///{tuner_home}/optuna.db").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE], [
        (t.state, t.user_attrs) for t in trials]
    dead, retry, fresh = trials
    assert retry.system_attrs["retry_history"] == [0] and retry.params == dead.params
    assert retry.user_attrs["resumed_from"] == {"trial": 0, "step": saved_step, "run_dir": str(first_run),
                                                "checkpoint": "last.pt", "skipped": []}
    # The trainer started at the checkpoint's step (its first record), and validated from there on.
    records = [json.loads(line) for line in (Path(retry.user_attrs["run_dir"]) / "metrics.jsonl").read_text()
               .splitlines()]
    starts = [r["step"] for r in records if r.get("kind") == "start"]
    assert starts[-1] == saved_step > 0, starts
    # Validations before the kill are not lost: they are the retry's intermediate values too.
    assert sorted(retry.intermediate_values) == [4, 8], retry.intermediate_values
    assert retry.value == min(retry.intermediate_values.values())
    assert fresh.user_attrs.get("resumed_from") is None and "retry_of" not in fresh.user_attrs
