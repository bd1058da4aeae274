"""Chaos: workers killed at random and a database outage longer than the grace period, on one
PostgreSQL study. Prints JSON; appends it to bench/results.jsonl.

``--workers`` ``tuner run-study`` processes share a fresh PostgreSQL database (created through
``--postgres-url`` and dropped afterwards). Once a trial has a checkpoint, a loop SIGKILLs a
random live worker every 1.5-5 s (its trial's child dies with it) and starts a replacement at
once, ``--kills`` times; half-way, the local PostgreSQL cluster is stopped for ``--outage``
seconds and started again while the kills go on (needs root and pg_ctlcluster; otherwise the
outage is reported as skipped). Like Compose's restart policy, the bench restarts a worker that
exits with an error (one started while the database was down says so and exits 2). The lease's
timeouts are shortened (``--heartbeat``, ``--grace``; the storage retry window derived from
them) so that the outage outlasts all three. The trials are few-step from-scratch runs of the
tiny preset on a 24-utterance eSpeak corpus, a checkpoint every 2 steps.

When the last worker is done, ``tuner.fleet.audit`` reads the study and the runs' records: trials
lost (failed for a transient reason without a retry, or left RUNNING/WAITING), trials trained
twice (a predecessor wrote a step after its retry's first), retries that did not resume from the
newest checkpoint, and the steps repeated after resumes (trained past the checkpoint, lost with
the kill, trained again). The goal: lost 0, trained twice 0, wrong resumes 0.

    python bench/chaos.py [--workers 4] [--kills 20] [--trials 12] [--max-steps 24] [--outage 20]
        [--heartbeat 2] [--grace 10] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Cost: the defaults take about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.common import ensure_corpus, output_arguments, positive_int, say
from harness.runner import Bench
from harness.studies import child_env, fresh_database, postgres_url, run_study_command, setup_study_bench
from sections.chaos import ChaosRecord

SPACE = """\
# Written by bench/chaos.py: few-step trials with frequent checkpoints; the training is not the point.
preset: tiny
study:
  name: chaos
  objective: val_mel_postnet_l1
  fine_tune: false
  max_steps: {max_steps}
  sampler: {{name: random, seed: 0}}
  pruner: {{name: none}}
  gates: []
  samples: 0
  max_retries: 100
fixed:
  val_interval: 4
  checkpoint_interval: 2
  val_size: 4
  fr_utterances: 0
  batch_size: 8
  warmup_steps: 0
  plots: false
  torch_threads: 1
params:
  learning_rate: {{type: float, low: 3.0e-4, high: 3.0e-3, log: true, default: 1.0e-3}}
"""


def cluster_control() -> list[str] | None:
    """Return the pg_ctlcluster command of the local cluster, None when it cannot be controlled here."""
    etc = Path("/etc/postgresql")
    clusters = sorted(p.name for p in etc.iterdir()) if etc.is_dir() else []
    if not clusters or shutil.which("pg_ctlcluster") is None or os.geteuid() != 0:
        return None
    return ["pg_ctlcluster", "--skip-systemctl-redirect", clusters[-1], "main"]


def outage(seconds: float) -> str:
    """Stop the local PostgreSQL cluster for ``seconds``; return what happened."""
    ctl = cluster_control()
    if ctl is None:
        return "skipped: needs root and pg_ctlcluster"
    subprocess.run([*ctl, "stop", "--mode", "fast"], check=True, capture_output=True, timeout=120)
    try:
        time.sleep(seconds)
    finally:
        subprocess.run([*ctl, "start"], check=True, capture_output=True, timeout=120)
    return f"{seconds:g} s"


class Fleet:
    """The bench's workers: ``tuner run-study`` processes started, killed and replaced, restarted after an error
    exit as Compose's restart policy does (e.g. one that started while the database was down and said so)."""

    def __init__(self, command: list[str], env: dict[str, str], logs: Path) -> None:
        self.command, self.env, self.logs = command, env, logs
        self.workers: list[subprocess.Popen] = []
        self.replaced: set[int] = set()  # indices of workers already restarted
        self.spawned = 0
        self.restarts = 0

    def spawn(self) -> None:
        """Start one more worker, its output in its own log."""
        self.spawned += 1
        with open(self.logs / f"worker-{self.spawned:03d}.log", "w", encoding="utf-8") as log:
            self.workers.append(subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, env=self.env))

    def supervise(self) -> None:
        """Restart the workers that exited with an error; a worker that exits 0 is done."""
        for index, worker in enumerate(list(self.workers)):
            if worker.poll() not in (None, 0, -signal.SIGKILL) and index not in self.replaced:
                self.replaced.add(index)
                self.restarts += 1
                self.spawn()

    def alive(self) -> list[subprocess.Popen]:
        return [w for w in self.workers if w.poll() is None]

    def busy(self) -> bool:
        """Whether a worker still runs, or one exited with an error and was not restarted yet."""
        return bool(self.alive()) or any(w.returncode not in (0, -signal.SIGKILL) and index not in self.replaced
                                         for index, w in enumerate(self.workers))

    def kill_all(self) -> None:
        for worker in self.alive():
            worker.kill()
            worker.wait(timeout=30)


def wait_for_a_checkpoint(home: Path) -> None:
    """Return once some trial of the study has written a checkpoint (the kills start then)."""
    runs = home / "runs" / "chaos"
    while not (runs.is_dir() and any((d / "checkpoints" / "last.pt").is_file() for d in runs.iterdir())):
        time.sleep(0.2)


def kill_at_random(args: argparse.Namespace, fleet: Fleet, down: dict[str, str],
                   outages: list[threading.Thread]) -> int:
    """SIGKILL a random live worker every 1.5-5 s and replace it, ``--kills`` times; return the kills done.

    Half-way, the outage starts in a thread of its own, added to ``outages`` (its result lands in ``down``).
    """
    rng = random.Random(args.seed)
    kills = 0
    while kills < args.kills:
        time.sleep(rng.uniform(1.5, 5.0))
        fleet.supervise()
        alive = fleet.alive()
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        kills += 1
        fleet.spawn()
        if not outages and kills >= args.kills // 2 and args.outage > 0:
            say("chaos", f"{kills} kills; database down for {args.outage:g} s")
            outages.append(threading.Thread(target=lambda: down.update(done=outage(args.outage))))
            outages[-1].start()
    return kills


def run(args: argparse.Namespace, url: str, folder: Path, corpus: Path) -> dict[str, Any]:
    """Run the workers under kills and the outage; return the counts of what was done to them."""
    folder.mkdir(parents=True, exist_ok=True)
    space = folder / "space.yaml"
    space.write_text(SPACE.format(max_steps=args.max_steps), encoding="utf-8")
    home, logs = folder / "home", folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = child_env(["MLFLOW_TRACKING_URI"], SMART_TUNER_STORAGE=url, SMART_TUNER_HEARTBEAT_SECONDS=str(args.heartbeat),
                    SMART_TUNER_GRACE_SECONDS=str(args.grace), OMP_NUM_THREADS="1")
    fleet = Fleet(run_study_command(space, corpus, home, args.trials), env, logs)
    started = time.monotonic()
    for _ in range(args.workers):
        fleet.spawn()
    down: dict[str, str] = {}
    outages: list[threading.Thread] = []
    try:
        wait_for_a_checkpoint(home)
        kills = kill_at_random(args, fleet, down, outages)
        say("chaos", f"{kills} kills done; waiting for the workers to finish")
        deadline = time.monotonic() + 3600
        while fleet.busy() and time.monotonic() <= deadline:
            fleet.supervise()
            time.sleep(1)
    finally:
        for thread in outages:  # the database is back before the workers are killed and it is dropped
            thread.join()
        fleet.kill_all()
    failed_exits = sorted({w.returncode for w in fleet.workers if w.returncode not in (0, -signal.SIGKILL)})
    return {"kills": kills, "outage": down.get("done", "not reached"), "workers_started": fleet.spawned,
            "restarts_after_error_exit": fleet.restarts, "error_exit_codes": failed_exits,
            "wall_s": round(time.monotonic() - started, 1)}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=4, help="workers at a time (default 4)")
    parser.add_argument("--kills", type=positive_int, default=20, help="random SIGKILLs (default 20)")
    parser.add_argument("--trials", type=positive_int, default=12, help="the study's target (default 12)")
    parser.add_argument("--max-steps", type=positive_int, default=24, help="steps per trial (default 24)")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds the database is down (0: none)")
    parser.add_argument("--heartbeat", type=float, default=2.0, help="lease heartbeat in seconds (default 2)")
    parser.add_argument("--grace", type=float, default=10.0, help="lease grace in seconds (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill schedule (default 1)")
    parser.add_argument("--postgres-url", type=postgres_url, default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="administrative URL used to create and drop the bench database")
    output_arguments(parser)


def run_and_audit(args: argparse.Namespace, url: str, folder: Path, corpus: Path) -> tuple[dict[str, Any], Any]:
    """Run the fleet on the study at ``url``; return what was done to it and tuner.fleet.audit's findings."""
    import optuna

    from tuner.fleet.audit import audit_trials
    from tuner.paths import Home
    from tuner.study.storage import open_storage, resolve_storage

    done = run(args, url, folder, corpus)
    storage = open_storage(resolve_storage(url, Home(folder / "home")))
    trials = optuna.load_study(study_name="chaos", storage=storage).get_trials(deepcopy=False)
    return done, audit_trials(trials)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ChaosRecord:
    if args.outage and args.outage <= args.grace:
        parser.error(f"--outage {args.outage:g} must be longer than --grace {args.grace:g}: that is the case tested")
    setup_study_bench(args, parser)
    corpus = ensure_corpus(args.workdir, 24)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    folder = args.workdir / "chaos" / stamp
    with fresh_database(args.postgres_url, f"tuner_chaos_{stamp}") as url:
        done, audit = run_and_audit(args, url, folder, corpus)
    figures = audit.as_dict()
    return {
        "workers": args.workers, "trials_target": args.trials, "max_steps": args.max_steps,
        "heartbeat_s": args.heartbeat, "grace_s": args.grace, **done,
        "trials_lost": figures["lost"], "trials_trained_twice": figures["trained_twice"],
        "wrong_resumes": figures["wrong_resume"], "retries": figures["retries"],
        "steps_resumed": figures["resumed_steps"], "steps_repeated": figures["repeated_steps"],
        "trials": figures["trials"], "finished": figures["finished"], "findings": figures["findings"],
        "goal_met": figures["lost"] == 0 and figures["trained_twice"] == 0 and figures["wrong_resume"] == 0
        and figures["finished"] >= args.trials,
        "run_folder": str(folder),
    }


BENCH = Bench("chaos", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
