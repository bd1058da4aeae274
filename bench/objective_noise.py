"""Is the objective above the noise? Seed-to-seed spread of a trial's value against the gap to a worse configuration.

An objective can rank trials only if retraining one configuration on another seed moves its
value less than a change of configuration does. This bench fine-tunes the shipped tiny base
(tests/data/tiny-aligned.pt) on an eSpeak corpus of a second voice as a default.yaml trial
would (32 held-out sentences, free-running validation of 8, the tuner's knobs frozen for the
controller), ``--seeds`` times with the defaults (learning rate 1e-5) and as many times with a
clearly different configuration (learning rate × ``--factor``), and reads each run's value: the
final evaluation of its best.pt on every held-out sentence, each with its own seed.

The validity check: the seed-to-seed standard deviation of each arm is at most a third of the
gap between the arms' means. Prints JSON; appends it to bench/results.jsonl.

    python bench/objective_noise.py [--seeds 3] [--steps 150] [--factor 10] [--utterances 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness.common import BASE_CHECKPOINT, made_once, output_arguments, positive_int, say
from harness.runner import Bench
from sections.objective_noise import NoiseRecord

OBJECTIVE = "fr_mcd_sl"
DEFAULT_LR = 1e-5  # default.yaml's default, the trainer's fine-tuning rate


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--steps", type=positive_int, default=150)
    parser.add_argument("--factor", type=float, default=10.0, help="the other arm's learning rate / the default's")
    parser.add_argument("--utterances", type=positive_int, default=120, help="the voice's corpus (32 held out)")
    output_arguments(parser)


def one_run(corpus: Path, run_dir: Path, learning_rate: float, seed: int, steps: int) -> dict[str, Any]:
    """Fine-tune the base once; return its seed, its final evaluation's figures and its wall time."""
    from trainer.config import preset
    from trainer.training.loop import train

    config = preset("tiny").replace(
        max_steps=steps, val_interval=max(1, steps // 3), checkpoint_interval=max(1, steps // 3), val_size=32,
        fr_utterances=8, lr_profile="finetune", learning_rate=learning_rate, seed=seed, torch_threads=1,
        plots=False, fr_asr="off", best_metric=OBJECTIVE, controller_frozen_keys=["learning_rate"])
    started = time.perf_counter()
    result = train(config, corpus, run_dir, warm_start=BASE_CHECKPOINT, show_progress=False)
    assert result.final is not None, "the final evaluation is on in this config"
    return {"seed": seed, "value": round(result.final.metrics[OBJECTIVE], 4), "best_step": result.final.step,
            "fr_mcd": round(result.final.metrics["fr_mcd"], 4),
            "fr_stop_error": round(result.final.metrics["fr_stop_error"], 4),
            "wall_s": round(time.perf_counter() - started, 1)}


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> NoiseRecord:
    from trainer.corpora.make import SECOND_VOICES

    corpus = made_once(args.workdir / f"voice-{args.utterances}", lang="en", utterances=args.utterances, seed=21,
                       voice=SECOND_VOICES["en"])
    arms = {"defaults": DEFAULT_LR, f"lr x{args.factor:g}": DEFAULT_LR * args.factor}
    runs: dict[str, list[dict[str, Any]]] = {}
    stamp = int(time.time())
    for arm, rate in arms.items():
        for seed in range(1, args.seeds + 1):
            say("objective_noise", f"{arm} (learning rate {rate:g}), seed {seed}")
            run_dir = args.workdir / f"objective_noise-{stamp}" / f"{arm.replace(' ', '')}-{seed}"
            runs.setdefault(arm, []).append(one_run(corpus, run_dir, rate, seed, args.steps))
    means = {arm: statistics.mean(r["value"] for r in rs) for arm, rs in runs.items()}
    sds = {arm: statistics.stdev([r["value"] for r in rs]) if len(rs) > 1 else None for arm, rs in runs.items()}
    gap = abs(means[list(arms)[1]] - means["defaults"])
    worst_sd = max((sd for sd in sds.values() if sd is not None), default=None)
    return {"objective": OBJECTIVE, "steps": args.steps, "utterances": args.utterances, "held_out": 32,
            "arms": {arm: {"learning_rate": rate, "runs": runs[arm], "mean": round(means[arm], 4),
                           "sd": None if sds[arm] is None else round(sds[arm], 4)} for arm, rate in arms.items()},
            "gap": round(gap, 4), "sd_over_gap": None if worst_sd is None or gap == 0 else round(worst_sd / gap, 3)}


BENCH = Bench("objective_noise", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
