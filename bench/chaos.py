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

from report import emit, machine  # bench/report.py, beside this script
from tuner_overhead import admin_sql, database_url, ensure_corpus, positive_int, postgres_url

ROOT = Path(__file__).resolve().parent.parent
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


def run(args: argparse.Namespace, url: str, folder: Path, corpus: Path) -> dict[str, Any]:
    """Run the workers under kills and the outage; return the counts of what was done to them."""
    folder.mkdir(parents=True, exist_ok=True)
    space = folder / "space.yaml"
    space.write_text(SPACE.format(max_steps=args.max_steps), encoding="utf-8")
    home, logs = folder / "home", folder / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",)}
    env.update(SMART_TUNER_STORAGE=url, SMART_TUNER_HEARTBEAT_SECONDS=str(args.heartbeat),
               SMART_TUNER_GRACE_SECONDS=str(args.grace), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "tuner.cli", "run-study", "--space", str(space), "--data", str(corpus),
               "--home", str(home), "--trials", str(args.trials), "--no-mlflow", "--quiet"]
    spawned = 0

    def spawn() -> subprocess.Popen:
        nonlocal spawned
        spawned += 1
        with open(logs / f"worker-{spawned:03d}.log", "w", encoding="utf-8") as log:
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    rng = random.Random(args.seed)
    started = time.monotonic()
    workers = [spawn() for _ in range(args.workers)]
    kills, restarts = 0, 0
    down: dict[str, str] = {}
    outage_thread: threading.Thread | None = None

    def supervise() -> None:
        """Restart workers that exited with an error, as Compose's restart policy does (e.g. one that
        started while the database was down and said so); a worker that exits 0 is done."""
        nonlocal restarts
        for worker in list(workers):
            if worker.poll() not in (None, 0, -signal.SIGKILL) and not getattr(worker, "replaced", False):
                worker.replaced = True  # type: ignore[attr-defined]
                restarts += 1
                workers.append(spawn())

    try:
        runs = home / "runs" / "chaos"
        while not (runs.is_dir() and any((d / "checkpoints" / "last.pt").is_file() for d in runs.iterdir())):
            time.sleep(0.2)
        while kills < args.kills:
            time.sleep(rng.uniform(1.5, 5.0))
            supervise()
            alive = [w for w in workers if w.poll() is None]
            if not alive:
                break
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            kills += 1
            workers.append(spawn())
            if outage_thread is None and kills >= args.kills // 2 and args.outage > 0:
                print(f"chaos: {kills} kills; database down for {args.outage:g} s", file=sys.stderr, flush=True)
                outage_thread = threading.Thread(target=lambda: down.update(done=outage(args.outage)))
                outage_thread.start()
        print(f"chaos: {kills} kills done; waiting for the workers to finish", file=sys.stderr, flush=True)
        deadline = time.monotonic() + 3600
        while any(w.poll() is None for w in workers) or any(
                w.returncode not in (0, -signal.SIGKILL) and not getattr(w, "replaced", False) for w in workers):
            if time.monotonic() > deadline:
                break
            supervise()
            time.sleep(1)
    finally:
        if outage_thread is not None:
            outage_thread.join()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=30)
    failed_exits = sorted({w.returncode for w in workers if w.returncode not in (0, -signal.SIGKILL)})
    return {"kills": kills, "outage": down.get("done", "not reached"), "workers_started": spawned,
            "restarts_after_error_exit": restarts, "error_exit_codes": failed_exits,
            "wall_s": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    if args.outage and args.outage <= args.grace:
        parser.error(f"--outage {args.outage:g} must be longer than --grace {args.grace:g}: that is the case tested")

    import optuna

    from tuner.fleet.audit import audit_trials
    from tuner.paths import Home
    from tuner.study.storage import open_storage, resolve_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    workdir = args.workdir.resolve()
    os.environ["SMART_TUNER_CACHE"] = str(workdir / "feature-cache")
    corpus = ensure_corpus(workdir)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    folder = workdir / "chaos" / stamp
    database = f"tuner_chaos_{stamp}"
    admin_sql(args.postgres_url, f'CREATE DATABASE "{database}"')
    try:
        url = database_url(args.postgres_url, database)
        done = run(args, url, folder, corpus)
        storage = open_storage(resolve_storage(url, Home(folder / "home")))
        trials = optuna.load_study(study_name="chaos", storage=storage).get_trials(deepcopy=False)
        audit = audit_trials(trials)
    finally:
        admin_sql(args.postgres_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    figures = audit.as_dict()
    result = {
        "bench": "chaos", "workers": args.workers, "trials_target": args.trials, "max_steps": args.max_steps,
        "heartbeat_s": args.heartbeat, "grace_s": args.grace, **done,
        "trials_lost": figures["lost"], "trials_trained_twice": figures["trained_twice"],
        "wrong_resumes": figures["wrong_resume"], "retries": figures["retries"],
        "steps_resumed": figures["resumed_steps"], "steps_repeated": figures["repeated_steps"],
        "trials": figures["trials"], "finished": figures["finished"], "findings": figures["findings"],
        "goal_met": figures["lost"] == 0 and figures["trained_twice"] == 0 and figures["wrong_resume"] == 0
        and figures["finished"] >= args.trials,
        "run_folder": str(folder), "machine": machine("cpu"),
        "command": "python bench/chaos.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
