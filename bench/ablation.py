"""Each of the trainer's training fixes switched off alone, against all of them on. Prints JSON.

"All fixes on" is the trainer's defaults with phases on (bench/harness/training.py); each ablation
switches one fix back to the published Tacotron2 recipe (ABLATIONS there). Same
corpus and seed for every run. Figures per run, as in bench/baseline.py: steps and wall
seconds to teacher-forced and free-running diagonality >= 0.85, and at the end gate
balanced accuracy, stop error and the validation mel L1. A fix whose removal does not
make these worse does not help on this corpus at this length, and the report says so.
Appends to bench/results.jsonl.

    python bench/ablation.py [--steps 150] [--every 25] [--seed 1] [--fixes a,b,...]
                             [--preset tiny|base] [--device cpu|cuda] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import (
    ABLATIONS,
    TARGET,
    all_fixes_config,
    jobs_of,
    run_all,
    run_arguments,
    run_setup,
    run_specs,
)
from sections.ablation import AblationRecord

from trainer.config import TrainConfig

REFERENCE = "all_fixes"


def inactive(fix: str, reference: TrainConfig) -> str | None:
    """Return why switching ``fix`` off cannot change a run of ``reference`` (None: it can).

    Such a run would repeat the reference step for step, so it is reported, not trained.
    """
    if fix == "scheduled_sampling" and reference.max_steps <= reference.tf_hold_steps:
        return (f"inactive in a {reference.max_steps}-step run: teacher forcing holds at 1.0 until step "
                f"{reference.tf_hold_steps}")
    return None


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25, help="validation interval in steps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixes", default=",".join(ABLATIONS),
                        help=f"comma-separated fixes to switch off (default all: {', '.join(ABLATIONS)})")
    run_arguments(parser)
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AblationRecord:
    fixes = [f.strip() for f in args.fixes.split(",") if f.strip()]
    unknown = [f for f in fixes if f not in ABLATIONS]
    if unknown:
        parser.error(f"--fixes: unknown fix {unknown[0]!r} (choose from {', '.join(ABLATIONS)})")
    reference = all_fixes_config(args.preset, args.steps, args.every, args.seed, args.device, 0)
    skipped = {f"no_{fix}": reason for fix in fixes if (reason := inactive(fix, reference))}
    fixes = [fix for fix in fixes if f"no_{fix}" not in skipped]
    corpus = ensure_corpus(args.workdir, args.utterances, lang=args.lang)
    runs = [(REFERENCE, {}, args.seed)] + [(f"no_{fix}", ABLATIONS[fix], args.seed) for fix in fixes]
    started = time.perf_counter()
    results = run_all(run_specs(args, corpus, runs), jobs_of(args))
    return {
        **run_setup(args), "seed": args.seed, "jobs": jobs_of(args), "target": TARGET,
        "ablations": {f"no_{fix}": ABLATIONS[fix] for fix in fixes}, "skipped": skipped,
        "runs": results, "wall_s": round(time.perf_counter() - started, 1),
    }


BENCH = Bench("ablation", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
