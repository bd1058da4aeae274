"""Adaptive vs fixed stop threshold: early stops and run-ons in free-running synthesis. Prints JSON.

Synthesises unseen demo sentences (a fresh eSpeak corpus) with a trained checkpoint, once
with the fixed threshold 0.5 and once with the adaptive one (trainer.model.stopping.stop_threshold
at the checkpoint's training progress), and compares stop error, early stops (< 0.8 x the
reference length), run-ons (> 1.2 x or never stopped) and max-step hits. Appends to
bench/results.jsonl.

    python bench/stop_gate.py CHECKPOINT [CHECKPOINT ...] [--utterances 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from sections.stop_gate import CheckpointFigures, StopGateRecord


def evaluate(checkpoint: Path, dataset: Any, seed: int) -> CheckpointFigures:
    """Return the free-running stop figures of ``checkpoint`` with each threshold kind (``dataset``: a TTSDataset)."""
    import torch

    from trainer.evaluation.validate import free_running
    from trainer.model.checkpoint import load_checkpoint
    from trainer.synthesis.infer import load_model

    model, config = load_model(checkpoint)
    payload = load_checkpoint(checkpoint)
    step = int(payload["position"]["step"])
    progress = min(step / max(config.max_steps, 1), 1.0)
    indices = list(range(len(dataset)))
    kinds: dict[str, dict[str, float]] = {}
    for kind in ("fixed", "adaptive"):
        torch.manual_seed(seed)  # the same prenet-dropout draws for both kinds
        chosen = config.replace(stop_gate=kind, stop_threshold=0.5, fr_max_factor=2.0)
        metrics, _ = free_running(model, dataset, indices, chosen, torch.device("cpu"),
                                  float(model.frames_per_char), progress)
        kinds[kind] = {k.removeprefix("fr_"): round(v, 4) for k, v in metrics.items()
                       if k in ("fr_stop_error", "fr_early_stop_rate", "fr_run_on_rate", "fr_hit_max_rate",
                                "fr_diagonality")}
    return {"checkpoint": str(checkpoint), "step": step, "progress": round(progress, 3), "fixed": kinds["fixed"],
            "adaptive": kinds["adaptive"]}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--utterances", type=int, default=48)
    parser.add_argument("--corpus-seed", type=int, default=99, help="sentence seed of the unseen test corpus")
    parser.add_argument("--seed", type=int, default=0)
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> StopGateRecord:
    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import FeatureCache, TTSDataset

    corpus = ensure_corpus(args.workdir, args.utterances, seed=args.corpus_seed)
    dataset = TTSDataset(read_corpus(corpus), FeatureCache())
    return {"utterances": len(dataset), "corpus_seed": args.corpus_seed,
            "runs": [evaluate(path, dataset, args.seed) for path in args.checkpoints]}


BENCH = Bench("stop_gate", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
