"""How fast does the tiny preset learn to align? Prints JSON; appends it to bench/results.jsonl.

Trains on an eSpeak demo corpus (made once under studies/bench/) and records, at every
validation, teacher-forced diagonality, focus and gate balanced accuracy, wall time and
seconds per step; reports the first step at which diagonality >= the target (0.85).

    python bench/alignment.py [--steps 400] [--every 100] [--utterances 300] [--device cpu]
        [--text-frontend characters|phonemes]

``--text-frontend characters`` trains on the letters of the same sentences instead of eSpeak
NG's IPA (the trainer's default); run both on one quiet machine to compare steps to the target.
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import timed_steps
from sections.alignment import AlignmentRecord

from trainer.presets import PRESETS


def arguments(parser: argparse.ArgumentParser) -> None:
    from trainer.config import preset

    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=100, help="validation interval in steps")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--preset", default="tiny", choices=PRESETS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--target", type=float, default=0.85)
    default_frontend = preset("tiny").model.text_frontend
    parser.add_argument("--text-frontend", default=default_frontend, choices=["characters", "phonemes"],
                        help=f"what the model reads (default {default_frontend}, the trainer's)")
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> AlignmentRecord:
    from trainer.config import preset
    from trainer.training.loop import train

    corpus = ensure_corpus(args.workdir, args.utterances)
    run_dir = args.workdir / f"alignment-{args.preset}-{args.text_frontend}-{args.device}-{int(time.time())}"
    config = preset(args.preset).replace(max_steps=args.steps, val_interval=args.every, seed=args.seed,
                                         checkpoint_interval=args.steps, device=args.device,
                                         text_frontend=args.text_frontend)
    history: list[dict] = []
    started = time.perf_counter()

    def record(step: int, metrics: dict[str, float]) -> bool:
        history.append({"step": step, "wall_s": round(time.perf_counter() - started, 1),
                        "tf_diagonality": round(metrics["tf_diagonality"], 4),
                        "tf_focus": round(metrics["tf_focus"], 4),
                        "tf_gate_balanced_accuracy": round(metrics["tf_gate_balanced_accuracy"], 4),
                        "val_mel_postnet_l1": round(metrics["val_mel_postnet_l1"], 4)})
        return False

    train(config, corpus, run_dir, callback=record, show_progress=sys.stderr.isatty())
    step_times = sorted(r["sec_per_step"] for r in timed_steps(run_dir, warmup=1))
    reached = next((h for h in history if h["tf_diagonality"] >= args.target), None)
    return {
        "preset": args.preset, "text_frontend": args.text_frontend, "device": args.device,
        "steps": args.steps,
        "utterances": args.utterances, "seed": args.seed,
        "first_step_diagonality_ge_target": reached["step"] if reached else None,
        "wall_s_to_target": reached["wall_s"] if reached else None, "target": args.target,
        # the upper median (an even count takes the later of the middle two), as this bench always reported it
        "median_sec_per_step": round(step_times[len(step_times) // 2], 3) if step_times else None,
        "history": history,
    }


BENCH = Bench("alignment", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
