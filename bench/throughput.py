"""Training throughput: seconds per step, mel frames per second, data-wait share, feature-cache effect. Prints JSON.

For each preset, trains ``--steps`` steps (plus two not counted, while allocations settle)
with one process using all threads, logging every step, and reports the median seconds per
optimiser step, mel frames trained per second, and the share of step time spent waiting
for batches. The trainer holds every utterance's log-mel in memory, so the feature cache
decides the start-up cost, not the step: the bench times loading the corpus with an empty
cache (every mel computed) and with a filled one, and the cost of computing one batch's
mels from audio, which a loader without cache would pay on every step. On CUDA, AMP is on.
Appends to bench/results.jsonl.

    python bench/throughput.py [--presets tiny,base] [--steps 20,3] [--utterances 300]
                               [--device cpu|cuda] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import emit, machine  # bench/report.py, beside this script
from runs import ROOT, ensure_corpus

WARMUP_STEPS = 2


def cache_figures(corpus: Path, batch_size: int) -> dict[str, Any]:
    """Return corpus load seconds with a cold and a warm feature cache, and one batch's mel cost (s)."""
    from trainer import audio
    from trainer.data import FeatureCache, TTSDataset, read_corpus

    items = read_corpus(corpus)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        TTSDataset(items, FeatureCache(folder), show_progress=False)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        TTSDataset(items, FeatureCache(folder), show_progress=False)
        warm = time.perf_counter() - started
    started = time.perf_counter()
    for item in items[:batch_size]:
        wav, _ = audio.load_audio(item.wav_path, audio.SAMPLE_RATE)
        audio.mel_spectrogram(wav, audio.SAMPLE_RATE)
    batch_mels = time.perf_counter() - started
    return {"utterances": len(items), "load_s_cold_cache": round(cold, 2), "load_s_warm_cache": round(warm, 2),
            "batch_mel_compute_s": round(batch_mels, 3), "batch_size": batch_size}


def train_figures(preset_name: str, steps: int, corpus: Path, workdir: Path, device: str,
                  batch_size: int | None = None) -> dict[str, Any]:
    """Train ``steps`` + WARMUP_STEPS steps of ``preset_name``; return step time, frames/s and data-wait share.

    ``batch_size`` replaces the preset's batch and gradient accumulation (one batch a step).
    """
    import torch

    from trainer.config import preset
    from trainer.evaluate import amp_dtype
    from trainer.train import train

    total = steps + WARMUP_STEPS
    config = preset(preset_name).replace(max_steps=total, val_interval=total, checkpoint_interval=total,
                                         log_interval=1, device=device, plots=False, fr_utterances=0,
                                         val_size=2, controller=False)
    if batch_size is not None:
        config = config.replace(batch_size=batch_size, grad_accum_steps=1)
    run_dir = workdir / f"throughput-{preset_name}-{device}-{int(time.time())}"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    train(config, corpus, run_dir, show_progress=False)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # The last step's time includes nothing else: validation runs after it is logged.
    timed = [r for r in records if r["kind"] == "train" and r["step"] > WARMUP_STEPS]
    step_s = statistics.median(r["sec_per_step"] for r in timed)
    return {
        "preset": preset_name, "steps_timed": len(timed), "batch_size": config.batch_size,
        "grad_accum_steps": config.grad_accum_steps, "reduction_factor": config.model.reduction_factor,
        "median_sec_per_step": round(step_s, 3),
        "mel_frames_per_s": round(sum(r["frames"] for r in timed) / sum(r["sec_per_step"] for r in timed), 1),
        "data_wait_share": round(sum(r["data_sec"] for r in timed) / sum(r["sec_per_step"] for r in timed), 4),
        "median_data_wait_s": round(statistics.median(r["data_sec"] for r in timed), 4),
        "amp": device == "cuda" and config.amp,
        **({"amp_dtype": str(amp_dtype(config)).removeprefix("torch."),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)} if device == "cuda" else {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,base")
    parser.add_argument("--steps", default="20,3", help="timed steps per preset, comma-separated in the same order")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="one batch of this size per step for every preset (default: each preset's own)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "studies" / "bench")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.jsonl")
    args = parser.parse_args()
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    steps = [int(s) for s in args.steps.split(",")]
    if len(steps) != len(presets) or any(p not in ("tiny", "base") for p in presets) or min(steps) < 1:
        parser.error("--presets takes tiny and/or base, and --steps one positive count per preset")

    corpus = ensure_corpus(args.workdir, args.utterances)
    started = time.perf_counter()
    result = {
        "bench": "throughput", "device": args.device, "utterances": args.utterances,
        "cache": cache_figures(corpus, 16),
        "presets": [train_figures(p, n, corpus, args.workdir / "runs", args.device, args.batch_size)
                    for p, n in zip(presets, steps, strict=True)],
        "wall_s": round(time.perf_counter() - started, 1), "machine": machine(args.device),
        "command": "python bench/throughput.py " + " ".join(sys.argv[1:]),
    }
    emit(result, args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
