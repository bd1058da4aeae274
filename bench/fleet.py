"""Fleet scale, simulated: many worker processes on one PostgreSQL study, with fake trials and random kills.

``--workers`` processes run the tuner's own worker loop (``tuner.fleet.worker.Worker``: leases,
heartbeats, take-over of lost trials, retries) against one fresh PostgreSQL database, each with
a seeded random sampler, as many machines would. Their trials train nothing: a trial samples
two parameters, then for ``--steps`` steps sleeps ``--step-seconds``, writes a training record
(its wall time) and reports a value; it completes with a value. Meanwhile the bench SIGKILLs a
random worker ``--kills`` times (one every few seconds) and starts a replacement at once, as a
supervisor would.

Measured: the storage's latency as a worker sees it (``between_trials_s``: from a trial's end to
the next trial's start, which covers the tell, the scan for lost trials and the ask; ``report_s``:
one intermediate report), their p50 and p99; the database connections of the study's database
(peak and median, sampled every half second, against the server's ``max_connections``); errors
the workers logged; and ``tuner.fleet.audit``'s lifecycle figures: trials lost, trained twice
(two processes running one trial), duplicate parameters, and how long a killed worker's trial
took to be resumed elsewhere (from its last record to its retry's start).

    python bench/fleet.py [--workers 100] [--trials 300] [--steps 3] [--step-seconds 1] [--kills 10]
                          [--heartbeat 2] [--grace 10] [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from harness.common import output_arguments, positive_int, say
from harness.runner import Bench
from harness.stats import p90
from harness.studies import fresh_database, postgres_url
from sections.fleet import FleetRecord

STUDY = "fleet"
HERE = Path(__file__).resolve()


# ----------------------------------------------------------------------------- a worker process


class FakeTrials:
    """A trial that trains nothing: parameters, a few timed sleeps with records and reports, a value."""

    def __init__(self, folder: Path, steps: int, step_seconds: float, log: Path) -> None:
        self.folder, self.steps, self.step_seconds, self.log = folder, steps, step_seconds, log
        self.ended = time.perf_counter()

    def __call__(self, trial: Any, lease: Any) -> Any:
        from tuner.fleet.endings import COMPLETED, StopReason, Verdict
        from tuner.fleet.lease import LostLease, holds
        from tuner.study.optuna_api import storage_of, trial_id

        started = time.perf_counter()
        between = started - self.ended
        x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
        run_dir = self.folder / f"trial-{trial.number:05d}-{os.getpid()}"
        run_dir.mkdir(parents=True)
        trial.set_user_attr("run_dir", str(run_dir))
        reports = []
        for step in range(1, self.steps + 1):
            time.sleep(self.step_seconds)
            if lease is not None and not holds(storage_of(trial.study), trial_id(trial), lease.owner):
                raise LostLease(f"lease lost at step {step}")
            with (run_dir / "metrics.jsonl").open("a") as out:
                out.write(json.dumps({"kind": "train", "step": step, "time": time.time()}) + "\n")
            reported = time.perf_counter()
            trial.report((x - 0.3) ** 2 + (y - 0.6) ** 2 + 0.1 / step, step)
            reports.append(time.perf_counter() - reported)
        self.ended = time.perf_counter()
        with self.log.open("a") as out:
            out.write(json.dumps({"trial": trial.number, "between_trials_s": between, "report_s": reports}) + "\n")
        return Verdict("complete", StopReason(COMPLETED, f"trained its budget of {self.steps} steps", self.steps),
                       values=[(x - 0.3) ** 2 + (y - 0.6) ** 2])


def worker_main(args: argparse.Namespace) -> int:
    """Run one worker of the fleet until the study holds ``--trials`` finished trials."""
    import optuna

    from tuner.fleet.worker import Worker
    from tuner.space.samplers import make_sampler
    from tuner.study.storage import creation_lock, open_storage
    from tuner.study.timeouts import timeouts

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name=STUDY, storage=open_storage(args.url),
                              sampler=make_sampler({"name": "random", "seed": 1}))
    runner = FakeTrials(Path(args.folder), args.steps, args.step_seconds,
                        Path(args.folder) / f"worker-{os.getpid()}.jsonl")
    result = Worker(study, runner, target=args.trials, timeouts=timeouts(), max_retries=100,
                    say=lambda line: print(line, file=sys.stderr, flush=True),
                    serialize=lambda: creation_lock(args.url, "ask")).run()
    return result.exit_code


# ----------------------------------------------------------------------------- the bench


class Fleet:
    """The worker processes: started, killed at random and replaced; each one's stderr kept."""

    def __init__(self, command: list[str], environment: dict[str, str], logs: Path) -> None:
        self.command, self.environment, self.logs = command, environment, logs
        self.processes: list[subprocess.Popen] = []

    def spawn(self) -> None:
        log = (self.logs / f"stderr-{len(self.processes):04d}.log").open("wb")
        self.processes.append(subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                               env=self.environment))

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.processes if p.poll() is None]


def watch_connections(admin_url: str, database: str, stop: threading.Event, counts: list[int]) -> None:
    """Append the database's connection count to ``counts`` every half second until ``stop``."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as connection:
        while not stop.is_set():
            row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                     (database,)).fetchone()
            counts.append(int(row[0]) if row else 0)
            stop.wait(0.5)


def kill_at_random(fleet: Fleet, kills: int, stop: threading.Event, killed_at: list[float]) -> None:
    """SIGKILL a random live worker every 2-6 s (after the first trials started), ``kills`` times; replace each."""
    rng = random.Random(7)
    stop.wait(15.0)
    for _ in range(kills):
        if stop.wait(rng.uniform(2.0, 6.0)):
            return
        alive = fleet.alive()
        if not alive:
            return
        rng.choice(alive).send_signal(signal.SIGKILL)
        killed_at.append(time.time())
        fleet.spawn()


def takeovers(trials: list[Any]) -> list[float]:
    """Return, for each retry, the seconds from its predecessor's last record to the retry's start."""
    from tuner.fleet.audit import own_steps
    from tuner.fleet.lease import RETRY_HISTORY_ATTR

    by_number = {t.number: t for t in trials}
    seconds = []
    for trial in trials:
        history = trial.system_attrs.get(RETRY_HISTORY_ATTR) or []
        if not history or trial.datetime_start is None:
            continue
        before = by_number.get(int(history[-1]))
        run_dir = before.user_attrs.get("run_dir") if before is not None else None
        steps = own_steps(Path(run_dir), 0) if run_dir else []
        if steps:
            seconds.append(trial.datetime_start.timestamp() - max(t for _, t in steps))
    return seconds


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=positive_int, default=100)
    parser.add_argument("--trials", type=positive_int, default=300, help="finished trials the study runs to")
    parser.add_argument("--steps", type=positive_int, default=3)
    parser.add_argument("--step-seconds", type=float, default=1.0)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after this many seconds")
    parser.add_argument("--postgres-url", type=postgres_url, default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    output_arguments(parser)


def run_fleet(args: argparse.Namespace, url: str, database: str, folder: Path) -> dict[str, Any]:
    """Create the study, run the fleet with kills to its end, return what was watched."""
    import optuna

    from tuner.study.storage import open_storage

    optuna.create_study(study_name=STUDY, storage=open_storage(url), direction="minimize")
    environment = {**os.environ, "SMART_TUNER_HEARTBEAT_SECONDS": str(args.heartbeat),
                   "SMART_TUNER_GRACE_SECONDS": str(args.grace), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(HERE), "--worker", "--url", url, "--folder", str(folder), "--trials",
               str(args.trials), "--steps", str(args.steps), "--step-seconds", str(args.step_seconds)]
    fleet, stop, counts, killed = Fleet(command, environment, folder), threading.Event(), [], []
    started = time.time()
    for _ in range(args.workers):
        fleet.spawn()
    watchers = [threading.Thread(target=watch_connections, args=(args.postgres_url, database, stop, counts)),
                threading.Thread(target=kill_at_random, args=(fleet, args.kills, stop, killed))]
    for watcher in watchers:
        watcher.start()
    while fleet.alive() and time.time() - started < args.timeout:
        time.sleep(1.0)
    timed_out = bool(fleet.alive())
    stop.set()
    for process in fleet.alive():
        process.kill()
    for watcher in watchers:
        watcher.join()
    exits = [p.wait() for p in fleet.processes]
    return {"wall_s": round(time.time() - started, 1), "timed_out": timed_out, "connections": counts,
            "kills": len(killed), "exit_codes": {str(c): exits.count(c) for c in sorted(set(exits))}}


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> FleetRecord:
    import optuna
    import psycopg

    from tuner.fleet.audit import audit_trials
    from tuner.study.storage import open_storage

    database = f"bench_fleet_{secrets.token_hex(4)}"
    folder = args.workdir / "fleet" / database
    folder.mkdir(parents=True)
    with psycopg.connect(args.postgres_url, autocommit=True, connect_timeout=10) as admin:
        row = admin.execute("SHOW max_connections").fetchone()
        max_connections = int(row[0]) if row else 0
    say("fleet", f"{args.workers} workers on {database}, {args.trials} trials, {args.kills} kills")
    with fresh_database(args.postgres_url, database) as url:
        watched = run_fleet(args, url, database, folder)
        trials = optuna.load_study(study_name=STUDY, storage=open_storage(url)).get_trials(deepcopy=False)
        audit = audit_trials(trials)
        taken = takeovers(trials)
    rows = [json.loads(line) for log in folder.glob("worker-*.jsonl") for line in log.read_text().splitlines()]
    between = [r["between_trials_s"] for r in rows]
    reports = [s for r in rows for s in r["report_s"]]
    errors = sum(1 for log in folder.glob("stderr-*.log") for line in log.read_text(errors="replace").splitlines()
                 if "error" in line.lower())
    counts = watched.pop("connections")
    return {
        "workers": args.workers, "trials_target": args.trials, "steps": args.steps, "step_seconds": args.step_seconds,
        "heartbeat_s": args.heartbeat, "grace_s": args.grace, **watched,
        "between_trials_s": _quantiles(between), "report_s": _quantiles(reports),
        "connections": {"peak": max(counts, default=0), "median": statistics.median(counts) if counts else 0,
                        "max_connections": max_connections},
        "worker_error_lines": errors, "audit": audit.as_dict(), "takeover_s": _quantiles(taken),
    }


def _quantiles(values: list[float]) -> dict[str, float | int | None]:
    """Return n, p50, p90 and p99 of ``values`` (seconds, 4 digits)."""
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else None
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 4) if ordered else None,
            "p90": p90(ordered, 4), "p99": round(p99, 4) if p99 is not None else None}


BENCH = Bench("fleet", __doc__, arguments, measure)

if __name__ == "__main__":
    if "--worker" in sys.argv:
        parsed = argparse.ArgumentParser()
        arguments(parsed)
        sys.exit(worker_main(parsed.parse_args()))
    sys.exit(BENCH.main())
