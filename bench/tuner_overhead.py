"""Tuner overhead: wall time per trial outside training. Prints JSON; appends it to bench/results.jsonl.

Where a trial's time goes besides training (process start, storage, MLflow logging), and what
one report/prune call costs, on SQLite and on PostgreSQL with 1, 2 and 4 workers. For each
storage and worker count (SQLite with one worker only: it refuses a second process), a fresh
study of ``--trials`` few-step trials (tiny preset from scratch on a 24-utterance eSpeak corpus
made once under the work folder; 4 steps, a validation every 2, no free-running validation, no
samples) is run by that many ``tuner run-study`` processes started together against one
storage, MLflow on (its own SQLite store in the run's home, never the PostgreSQL database of
Optuna). Every process and trial runs with one thread (``OMP_NUM_THREADS=1``,
``torch_threads: 1``).

    python bench/tuner_overhead.py [--trials 8] [--workers 1,2,4] [--storages sqlite,postgresql]
        [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres] [--workdir studies/bench]
        [--results bench/results.jsonl] [--device cpu]

Per trial the numbers come from the trial's ``timing`` attribute (tuner/trial/runner.py) and
Optuna's own start and end: total = datetime_complete - datetime_start, overhead = total -
train_s, in parts: ``process_start`` (the child's creation to its ``train`` call: interpreter,
imports, storage connection), ``parent_before_child`` (sampling, MLflow run, job file),
``media`` (plots of the checkpoint), ``parent_after_child`` (last metrics, artifacts, MLflow
run finished) and ``other`` (the rest: mostly the child's interpreter shutdown after its
outcome, ``child_exit_s`` in the attribute; then Optuna's ask and tell). A row gives medians
over its trials (so the parts need not add up to the median overhead). The report/prune call
is the median over trials of report_s / report_calls; it lies inside train_s. The pruner is
the median pruner with a warm-up longer than the budget: at every validation it reads the
study's complete trials, as a pruning one does, but never prunes, so every trial trains the
same steps. ``study_wall_s`` runs from starting the workers to the last one's exit (their
start-up and MLflow's store creation included).

PostgreSQL: one database per configuration is created through ``--postgres-url`` (an
administrative login; the default is the local trust-auth server) and dropped afterwards.
The study is created by this script before the workers start (SQLite has no creation lock).
The workers get the storage URL through ``$SMART_TUNER_STORAGE`` rather than ``--storage``, so
a password never shows in the process list. Run folders and logs stay under
``WORKDIR/tuner_overhead/``; the feature cache under ``WORKDIR/feature-cache``.

Cost: the defaults (4 configurations x 8 trials) take about 5 minutes on 2 idle cores, about
7 beside two other busy processes (a configuration: 1.5-2 minutes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from harness.common import ROOT, ensure_corpus, output_arguments, positive_int, say
from harness.runner import Bench
from harness.stats import median, p90
from harness.studies import (
    admin_sql,
    child_env,
    close_storage,
    fresh_database,
    postgres_url,
    run_study_command,
    setup_study_bench,
    stop_text,
    warm_feature_cache,
)
from sections.tuner_overhead import OverheadRow, TunerOverheadRecord

STORAGES = ("sqlite", "postgresql")
STUDY = "overhead"
MAX_STEPS = 4
VAL_INTERVAL = 2
UTTERANCES = 24
CONFIG_TIMEOUT_S = 900  # a configuration's workers are killed after this long (something is wrong)

SPACE = """\
# Written by bench/tuner_overhead.py: few-step from-scratch trials; the training is not the point.
description: tuner overhead bench (few-step trials; the pruner reads the study but never prunes)
preset: tiny
study:
  name: {study}
  objective: val_mel_postnet_l1
  fine_tune: false
  n_trials: {trials}
  max_steps: {max_steps}
  sampler: {{name: random, seed: 0}}
  # Reads every complete trial at each validation (as a pruning median pruner does), never prunes.
  pruner: {{name: median, n_startup_trials: 1, n_warmup_steps: 1000000}}
  gates: []
  samples: 0
  stall_timeout: 600
fixed:
  val_interval: {val_interval}
  val_size: 4
  fr_utterances: 0
  batch_size: 8
  warmup_steps: 0
  plots: false
  torch_threads: 1
  device: {device}
params:
  learning_rate: {{type: float, low: 3.0e-4, high: 3.0e-3, log: true, default: 1.0e-3}}
  ga_weight: {{type: float, low: 1.0, high: 10.0, log: true, default: 2.5}}
"""


def worker_counts(text: str) -> list[int]:
    """argparse type: ``1,2,4`` -> [1, 2, 4] (positive, no repeats)."""
    counts = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not counts:
        raise argparse.ArgumentTypeError("expected worker counts separated by commas, e.g. 1,2,4")
    if len(set(counts)) != len(counts):
        raise argparse.ArgumentTypeError(f"a worker count is listed twice in {text!r}")
    return counts


def storage_kinds(text: str) -> list[str]:
    """argparse type: ``sqlite,postgresql`` -> ["sqlite", "postgresql"]."""
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [k for k in kinds if k not in STORAGES]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"expected some of {','.join(STORAGES)}, got {text!r}")
    if len(set(kinds)) != len(kinds):
        raise argparse.ArgumentTypeError(f"a storage is listed twice in {text!r}")
    return kinds


def write_space(folder: Path, trials: int, device: str) -> Path:
    """Write the bench's search space into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "space.yaml"
    path.write_text(SPACE.format(study=STUDY, trials=trials, max_steps=MAX_STEPS, val_interval=VAL_INTERVAL,
                                 device=device), encoding="utf-8")
    return path


def create_study(space_path: Path, storage_url: str) -> None:
    """Create the study (schema, defaults enqueued) before the workers start, as one process.

    SQLite has no creation lock in the tuner (it serves one process), so workers starting
    together on a fresh file could race on its tables.
    """
    import optuna

    from tuner.space.load import load_space
    from tuner.study.storage import check_storage
    from tuner.study.studies import open_study

    check_storage(storage_url)
    # The pruner given here is this process's only: each worker opens the study with the space's own.
    opened = open_study(load_space(space_path), STUDY, storage_url, MAX_STEPS, optuna.pruners.NopPruner())
    close_storage(opened.study)


def run_workers(count: int, space_path: Path, corpus: Path, home: Path, storage_url: str, trials: int,
                logs: Path) -> float:
    """Start ``count`` ``tuner run-study`` processes together, wait for all; return the wall seconds."""
    # MLflow on, in the home's own SQLite store
    env = child_env(["MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT"], OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                    SMART_TUNER_STORAGE=storage_url)
    command = run_study_command(space_path, corpus, home, trials, study=STUDY, mlflow=True)
    logs.mkdir(parents=True, exist_ok=True)
    processes, handles = [], []
    started = time.perf_counter()
    try:
        for k in range(count):
            handle = (logs / f"worker-{k}.log").open("wb")
            handles.append(handle)
            processes.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
        deadline = started + CONFIG_TIMEOUT_S
        for k, process in enumerate(processes):
            try:
                process.wait(timeout=max(1.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                print(f"tuner_overhead: worker {k} still running after {CONFIG_TIMEOUT_S} s; killed", file=sys.stderr)
                process.kill()
                process.wait()
            if process.returncode != 0:
                print(f"tuner_overhead: worker {k} exited with {process.returncode}; see {logs}/worker-{k}.log",
                      file=sys.stderr)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        for handle in handles:
            handle.close()
    return time.perf_counter() - started


def summarise(storage_url: str) -> dict[str, Any]:
    """Return the per-trial figures of the study in ``storage_url`` (a row's keys but storage, workers, wall)."""
    import optuna
    from optuna.trial import TrialState

    from tuner.study.storage import open_storage

    study = optuna.load_study(study_name=STUDY, storage=open_storage(storage_url))
    try:
        trials = study.get_trials(deepcopy=False)
    finally:
        close_storage(study)
    for trial in trials:
        if trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            print(f"tuner_overhead: trial {trial.number} {trial.state.name}: "
                  f"{stop_text(trial)}", file=sys.stderr)
    measured = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                and "train_s" in t.user_attrs.get("timing", {})]
    totals, trains, overheads, per_call = [], [], [], []
    parts: dict[str, list[float]] = {key: [] for key in ("process_start", "parent_before_child", "media",
                                                         "parent_after_child", "other")}
    calls = 0
    for trial in measured:
        timing = trial.user_attrs["timing"]
        total = (trial.datetime_complete - trial.datetime_start).total_seconds()
        overhead = total - timing["train_s"]
        known = {"process_start": timing["process_start_s"] + timing["worker_start_to_train_s"],
                 "parent_before_child": timing["parent_before_child_s"], "media": timing["media_s"],
                 "parent_after_child": timing["parent_after_child_s"]}
        known["other"] = overhead - sum(known.values())
        for key, value in known.items():
            parts[key].append(value)
        totals.append(total)
        trains.append(timing["train_s"])
        overheads.append(overhead)
        calls += timing["report_calls"]
        if timing["report_calls"]:
            per_call.append(1000.0 * timing["report_s"] / timing["report_calls"])
    return {"trials": len(measured), "trial_total_s_median": median(totals), "trial_total_s_p90": p90(totals),
            "train_s_median": median(trains), "overhead_s_median": median(overheads),
            "overhead_parts_s_median": {key: median(values) for key, values in parts.items()},
            "report_call_ms_median": median(per_call, 2), "report_calls": calls}


def storage_of(kind: str, args: argparse.Namespace, home: Path, database: str):
    """Return a context yielding the storage URL of one configuration: the home's SQLite file, or a PostgreSQL
    database made for it through ``--postgres-url`` and dropped afterwards."""
    if kind == "sqlite":
        return nullcontext(f"sqlite:///{home / 'optuna.db'}")
    return fresh_database(args.postgres_url, database)


def run_config(storage: str, workers: int, args: argparse.Namespace, space_path: Path, corpus: Path,
               stamp: str) -> OverheadRow:
    """Run one (storage, workers) configuration on a fresh study; return its row."""
    folder = args.workdir / "tuner_overhead" / f"{stamp}-{storage}-w{workers}"
    home = folder / "home"
    with storage_of(storage, args, home, f"tuner_overhead_{stamp.replace('-', '_')}_w{workers}") as url:
        say("tuner_overhead", f"{storage}, {workers} worker(s), {args.trials} trials ...")
        create_study(space_path, url)
        wall = run_workers(workers, space_path, corpus, home, url, args.trials, folder / "logs")
        figures = summarise(url)
    row = {"storage": storage, "workers": workers, "trials": figures.pop("trials"), "study_wall_s": round(wall, 1),
           **figures}
    say("tuner_overhead", f"  wall {row['study_wall_s']} s, trial median {row['trial_total_s_median']} s, "
        f"overhead median {row['overhead_s_median']} s")
    return row


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trials", type=positive_int, default=8, help="trials per configuration (default 8)")
    parser.add_argument("--workers", type=worker_counts, default=[1, 2, 4], help="worker counts, e.g. 1,2,4")
    parser.add_argument("--storages", type=storage_kinds, default=list(STORAGES), help="sqlite,postgresql")
    parser.add_argument("--postgres-url", type=postgres_url, default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="administrative URL used to create and drop the bench databases")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    output_arguments(parser)


def check_postgres(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Stop with a usage error when PostgreSQL is asked for and ``--postgres-url`` does not connect."""
    if "postgresql" in args.storages:
        import psycopg

        try:
            admin_sql(args.postgres_url, "SELECT 1")
        except psycopg.Error as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            parser.error(f"--postgres-url: cannot connect ({detail})")


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> TunerOverheadRecord:
    setup_study_bench(args, parser)
    check_postgres(args, parser)
    corpus = ensure_corpus(args.workdir, UTTERANCES)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    space_path = write_space(args.workdir / "tuner_overhead", args.trials, args.device)
    warm_feature_cache(space_path, corpus)
    # SQLite serves one run-study process (a second is refused: tuner/README.md), so it runs with one worker only.
    configs = [(storage, workers) for storage in args.storages for workers in args.workers
               if storage != "sqlite" or workers == 1]
    skipped = [f"sqlite x{workers}" for workers in args.workers if workers > 1 and "sqlite" in args.storages]
    rows = [run_config(storage, workers, args, space_path, corpus, stamp) for storage, workers in configs]
    return {
        "trials_per_config": args.trials, "max_steps": MAX_STEPS, "rows": rows,
        "skipped": [f"{name}: SQLite refuses a second process" for name in skipped],
    }


BENCH = Bench("tuner_overhead", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
