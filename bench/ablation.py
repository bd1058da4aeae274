"""Each of the trainer's training fixes switched off alone, against all of them on. Prints JSON.

"All fixes on" is the trainer's defaults with phases on (bench/runs.py); each ablation
switches one fix back to the published Tacotron2 recipe (bench/runs.py ABLATIONS). Same
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
from pathlib import Path

from report import emit, machine  # bench/report.py, beside this script
from runs import (
    ABLATIONS,
    ROOT,
    RunSpec,
    all_fixes_config,
    ensure_corpus,
    run_all,
    text_frontend_of,
)

from trainer.config import TrainConfig
from trainer.presets import PRESETS

REFERENCE = "all_fixes"


def inactive(fix: str, reference: TrainConfig) -> str | None:
    """Return why switching ``fix`` off cannot change a run of ``reference`` (None: it can).

    Such a run would repeat the reference step for step, so it is reported, not trained.
    """
    if fix == "scheduled_sampling" and reference.max_steps <= reference.tf_hold_steps:
        return (f"inactive in a {reference.max_steps}-step run: teacher forcing holds at 1.0 until step "
                f"{reference.tf_hold_steps}")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25, help="validation interval in steps")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixes", default=",".join(ABLATIONS),
                        help=f"comma-separated fixes to switch off (default all: {', '.join(ABLATIONS)})")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--lang", default="en", choices=["en", "ru"], help="language of the eSpeak corpus")
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: 2 on cpu, 1 on cuda)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    fixes = [f.strip() for f in args.fixes.split(",") if f.strip()]
    unknown = [f for f in fixes if f not in ABLATIONS]
    if unknown:
        parser.error(f"--fixes: unknown fix {unknown[0]!r} (choose from {', '.join(ABLATIONS)})")
    jobs = args.jobs or (2 if args.device == "cpu" else 1)

    reference = all_fixes_config(args.preset, args.steps, args.every, args.seed, args.device, 0)
    skipped = {f"no_{fix}": reason for fix in fixes if (reason := inactive(fix, reference))}
    fixes = [fix for fix in fixes if f"no_{fix}" not in skipped]
    corpus = ensure_corpus(args.workdir, args.utterances, lang=args.lang)
    names = [REFERENCE] + [f"no_{fix}" for fix in fixes]
    overrides = [{}] + [ABLATIONS[fix] for fix in fixes]
    specs = [RunSpec(name, chosen, args.seed, args.preset, args.steps, args.every, args.device,
                     threads=1 if jobs > 1 else 0, corpus=str(corpus), workdir=str(args.workdir / "runs"))
             for name, chosen in zip(names, overrides, strict=True)]
    started = time.perf_counter()
    runs = run_all(specs, jobs)
    result = {
        "bench": "ablation", "preset": args.preset, "device": args.device, "steps": args.steps,
        "every": args.every, "utterances": args.utterances, "lang": args.lang,
        "text_frontend": text_frontend_of(args.preset),
        "seed": args.seed, "jobs": jobs, "target": 0.85,
        "ablations": {f"no_{fix}": ABLATIONS[fix] for fix in fixes}, "skipped": skipped,
        "runs": runs, "wall_s": round(time.perf_counter() - started, 1), "machine": machine(args.device),
        "command": "python bench/ablation.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
