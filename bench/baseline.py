"""Published Tacotron2 defaults against all the trainer's training fixes, over three seeds. Prints JSON.

Baseline (bench/harness/training.py BASELINE): no guided attention, prenet dropout 0.5 (also at
inference), constant learning rate 1e-3, fixed stop threshold 0.5, full teacher forcing,
plain MSE. Fixed: the trainer's defaults with phases on. Same corpus, same seeds. For each
run: steps and wall seconds until teacher-forced and free-running diagonality >= 0.85
(None: not within the run), and at the end gate balanced accuracy, stop error and the
validation mel L1. Appends to bench/results.jsonl.

    python bench/baseline.py [--steps 150] [--every 25] [--seeds 1,2,3] [--utterances 300]
                             [--preset tiny|base] [--device cpu|cuda] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import BASELINE, TARGET, jobs_of, run_all, run_arguments, run_setup, run_specs, summarise
from sections.baseline import BaselineRecord

CONFIGS = {"baseline": BASELINE, "fixed": {}}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25, help="validation interval in steps")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    run_arguments(parser)
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> BaselineRecord:
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    corpus = ensure_corpus(args.workdir, args.utterances, lang=args.lang)
    # Baseline and fixed of one seed side by side, so both see the same machine load.
    specs = run_specs(args, corpus, [(name, overrides, seed) for seed in seeds for name, overrides in CONFIGS.items()])
    started = time.perf_counter()
    runs = run_all(specs, jobs_of(args))
    return {
        **run_setup(args), "seeds": seeds, "jobs": jobs_of(args), "target": TARGET,
        "baseline_overrides": BASELINE,
        "summary": {name: summarise([r for r in runs if r["name"] == name]) for name in CONFIGS},
        "runs": runs, "wall_s": round(time.perf_counter() - started, 1),
    }


BENCH = Bench("baseline", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
