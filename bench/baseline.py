"""Published Tacotron2 defaults against all the trainer's training fixes, over three seeds. Prints JSON.

Baseline (bench/runs.py BASELINE): no guided attention, prenet dropout 0.5 (also at
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
from pathlib import Path

from report import emit, machine  # bench/report.py, beside this script
from runs import BASELINE, ROOT, RunSpec, ensure_corpus, run_all, summarise, text_frontend_of

from trainer.presets import PRESETS

CONFIGS = {"baseline": BASELINE, "fixed": {}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25, help="validation interval in steps")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--lang", default="en", choices=["en", "ru"], help="language of the eSpeak corpus")
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=None, help="runs at once (default: 2 on cpu, 1 on cuda)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    jobs = args.jobs or (2 if args.device == "cpu" else 1)

    corpus = ensure_corpus(args.workdir, args.utterances, lang=args.lang)
    # Baseline and fixed of one seed side by side, so both see the same machine load.
    specs = [RunSpec(name, overrides, seed, args.preset, args.steps, args.every, args.device,
                     threads=1 if jobs > 1 else 0, corpus=str(corpus), workdir=str(args.workdir / "runs"))
             for seed in seeds for name, overrides in CONFIGS.items()]
    started = time.perf_counter()
    runs = run_all(specs, jobs)
    result = {
        "bench": "baseline", "preset": args.preset, "device": args.device, "steps": args.steps,
        "every": args.every, "utterances": args.utterances, "lang": args.lang,
        "text_frontend": text_frontend_of(args.preset),
        "seeds": seeds, "jobs": jobs, "target": 0.85,
        "baseline_overrides": BASELINE,
        "summary": {name: summarise([r for r in runs if r["name"] == name]) for name in CONFIGS},
        "runs": runs, "wall_s": round(time.perf_counter() - started, 1), "machine": machine(args.device),
        "command": "python bench/baseline.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
