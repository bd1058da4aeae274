"""The training step of this checkout against an earlier revision's, in one run on one machine. Prints JSON.

A speed target stated as a ratio ("twice today's mel frames per second") can only be judged
on one machine: these 2-core machines differ from each other by more than most code changes
(the same code measured 0.9 s and 1.6 s a tiny step on two of them). So this bench extracts
``--baseline`` (a git revision, by default the code as it was before the speed work began)
beside the working tree and trains both, alternating, on the same corpus with the same
settings: ``--preset`` at ``--batch-size`` (one batch a step), ``--steps`` timed steps after
two not counted, validation only after the last step, each run a fresh process of that
revision's own ``trainer train``. Every ``--threads`` setting is measured ("preset": each
revision's own default for the preset, what a user gets; 0: torch's default, one thread per core;
N: N threads), and everything ``--rounds`` times, the revisions taking turns so that a
change in the machine's state touches both. Both read characters (``text_frontend``), so the
encoder sees the same input whichever frontend each revision defaults to.

Reports, per thread setting, each revision's median s/step and mel frames/s over its rounds
and the checkout's frames/s as a ratio of the baseline's. Appends to bench/results.jsonl.

    python bench/speedup.py [--baseline REV] [--preset tiny] [--batch-size 16] [--steps 12]
                            [--rounds 2] [--threads preset,0,1] [--utterances 300]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.common import ROOT, ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import WARMUP_STEPS, frames_per_second, timed_steps
from sections.speedup import SpeedupRecord, ThreadRow

from trainer.presets import PRESETS

# The parent of the first commit of the speed work (bench/profile_step.py): the tiny step of
# this code was the starting figure of the speed targets.
BASELINE_REVISION = "a5069542fdeecea2c5b97822cab15ae67be133f4"
WORKTREE = "worktree"  # the checkout's own label in the results


def extract(revision: str, into: Path) -> Path:
    """Return a folder holding ``revision``'s files (extracted once by ``git archive``); ValueError if unknown."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--verify", f"{revision}^{{commit}}"], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise ValueError(f"--baseline {revision}: not a commit of this repository's history "
                         "(a shallow clone lacks older ones: git fetch --unshallow)") from None
    tree = into / f"rev-{commit[:12]}"
    into.mkdir(parents=True, exist_ok=True)
    if not tree.is_dir():
        # Extracted beside and renamed into place, so an interrupted extraction is never taken for a tree.
        partial = Path(tempfile.mkdtemp(prefix=f"{tree.name}-", dir=into))
        archive = subprocess.run(["git", "archive", "--format=tar", commit], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as source:
            source.extractall(partial, filter="data")
        partial.rename(tree)
    return tree


def time_run(tree: Path, corpus: Path, run_dir: Path, preset_name: str, batch_size: int, steps: int,
             threads: int | None) -> dict[str, float]:
    """Train ``tree``'s trainer for ``steps`` + WARMUP_STEPS steps; return its median s/step and mel frames/s.

    ``threads`` None keeps the revision's own setting for the preset.
    """
    total = steps + WARMUP_STEPS
    settings: dict[str, Any] = {"batch_size": batch_size, "grad_accum_steps": 1, "val_interval": total,
                                "checkpoint_interval": total, "log_interval": 1, "plots": "false",
                                "fr_utterances": 0, "val_size": 2, "controller": "false",
                                "text_frontend": "characters"}
    if threads is not None:
        settings["torch_threads"] = threads
    command = [sys.executable, "-c", "import sys; from trainer.cli import main; sys.exit(main())", "train",
               str(corpus), "--out", str(run_dir), "--preset", preset_name, "--max-steps", str(total),
               "--quiet", "--no-mlflow"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    # The revision's own packages first (the working directory is the tree, too); the wait policy is
    # inherited, so both revisions run under the same one.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise SystemExit(f"{tree.name}: trainer train ended with code {done.returncode}: {tail[0]}")
    timed = timed_steps(run_dir)
    return {"sec_per_step": statistics.median(r["sec_per_step"] for r in timed),
            "mel_frames_per_s": frames_per_second(timed)}


def thread_label(threads: int | None) -> str:
    """Return how a thread setting is reported: "preset", "default" (torch's) or the count."""
    return "preset" if threads is None else str(threads or "default")


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baseline", default=BASELINE_REVISION, help="git revision to compare with "
                        f"(default {BASELINE_REVISION[:10]}, before the speed work)")
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run (default 12)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each revision and thread setting (default 2)")
    parser.add_argument("--threads", default="preset,0,1",
                        help="thread settings, comma-separated: preset (each revision's own), 0 (torch's default) "
                             "or a count (default preset,0,1)")
    parser.add_argument("--utterances", type=int, default=300)
    output_arguments(parser)


def thread_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[int | None]:
    """Return the ``--threads`` settings (None: the revision's own), or stop with a usage error."""
    names = [t.strip() for t in args.threads.split(",") if t.strip()]
    if not names or not all(t == "preset" or (t.isdigit()) for t in names):
        parser.error(f"--threads takes preset, 0 or thread counts, comma-separated; got {args.threads!r}")
    if args.steps < 1 or args.rounds < 1 or args.batch_size < 1:
        parser.error("--steps, --rounds and --batch-size take positive counts")
    return [None if t == "preset" else int(t) for t in names]


def alternate(args: argparse.Namespace, trees: dict[str, Path], threads: list[int | None],
              corpus: Path) -> dict[tuple[int | None, str], list[dict[str, float]]]:
    """Train every revision at every thread setting ``--rounds`` times, taking turns; return each one's figures."""
    runs_dir = args.workdir / "runs" / f"speedup-{int(time.time())}"
    samples: dict[tuple[int | None, str], list[dict[str, float]]] = {}
    for round_index in range(args.rounds):
        for count in threads:
            # Alternate which revision goes first, so neither always meets the machine in the same state.
            order = list(trees) if round_index % 2 == 0 else list(reversed(trees))
            for label in order:
                run_dir = runs_dir / f"{label}-threads-{thread_label(count)}-r{round_index}"
                figures = time_run(trees[label], corpus, run_dir, args.preset, args.batch_size, args.steps, count)
                samples.setdefault((count, label), []).append(figures)
                print(f"round {round_index + 1} threads {thread_label(count)} {label}: "
                      f"{figures['sec_per_step']:.3f} s/step, {figures['mel_frames_per_s']:.0f} mel frames/s",
                      file=sys.stderr, flush=True)
    return samples


def thread_row(count: int | None, labels: list[str], samples: dict[tuple[int | None, str], list[dict[str, float]]]
               ) -> ThreadRow:
    """Return one thread setting's row: each revision's medians over its rounds, and the checkout's ratio."""
    row: dict[str, Any] = {"threads": thread_label(count)}
    for label in labels:
        runs = samples[(count, label)]
        row[label] = {"median_sec_per_step": round(statistics.median(r["sec_per_step"] for r in runs), 3),
                      "mel_frames_per_s": round(statistics.median(r["mel_frames_per_s"] for r in runs), 1),
                      "each_run_mel_frames_per_s": [round(r["mel_frames_per_s"], 1) for r in runs]}
    row["frames_per_s_ratio"] = round(row[WORKTREE]["mel_frames_per_s"] / row["baseline"]["mel_frames_per_s"], 3)
    return row


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> SpeedupRecord:
    threads = thread_settings(args, parser)
    started = time.perf_counter()
    try:
        trees = {"baseline": extract(args.baseline, args.workdir / "revisions"), WORKTREE: ROOT}
    except ValueError as error:
        parser.error(str(error))
    corpus = ensure_corpus(args.workdir, args.utterances)
    samples = alternate(args, trees, threads, corpus)
    rows = [thread_row(count, list(trees), samples) for count in threads]
    baseline = subprocess.run(["git", "rev-parse", "--short", f"{args.baseline}^{{commit}}"], cwd=ROOT,
                              check=True, capture_output=True, text=True).stdout.strip()
    policy = os.environ.get("OMP_WAIT_POLICY", "PASSIVE (the trainer's default)")
    return {"preset": args.preset, "batch_size": args.batch_size, "steps_timed": args.steps,
            "rounds": args.rounds, "baseline_revision": baseline, "text_frontend": "characters",
            "utterances": args.utterances,
            "omp_wait_policy": policy, "rows": rows, "wall_s": round(time.perf_counter() - started, 1)}


BENCH = Bench("speedup", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
