"""Memory and speed at corpus scale: feature memory per hour of audio, load time, peak RSS, s/step. Prints JSON.

The trainer holds every utterance's log-mel in memory (float32, 80 bands, 86.1 frames per
second of audio). For the 300-utterance bench corpus and a large one (``--utterances``,
3,000 by default, made on first use like the other bench corpora), each in a fresh process:
the corpus load with an empty and with a filled feature cache (seconds, resident memory
added), the bytes of mels held per hour of audio; then, in another, ``--steps`` tiny-preset
training steps as a trial runs them (median s/step, the process's peak resident memory).
From the measured bytes per hour it projects a 24-hour corpus (LJSpeech's size) against
the 8 GB that in-memory features may take. Appends to bench/results.jsonl.

    python bench/scale.py [--utterances 3000] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness.common import ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import timed_steps
from sections.scale import CorpusRow, ScaleRecord

FEATURE_BUDGET_GB = 8.0  # in-memory features a 24-hour corpus may take
LJSPEECH_HOURS = 24.0


def _rss_mib() -> float:
    """Return this process's resident memory now (MiB), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_load(corpus: str, cache_dir: str) -> dict[str, Any]:
    """In a fresh process: load ``corpus`` (the cache as it is); seconds, resident memory added, what it holds."""
    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import FeatureCache, TTSDataset

    items = read_corpus(corpus)
    base_rss = _rss_mib()
    started = time.perf_counter()
    dataset = TTSDataset(items, FeatureCache(cache_dir), show_progress=False)
    seconds = time.perf_counter() - started
    held_rss = _rss_mib() - base_rss
    mel_bytes = sum(e.mel.numel() * e.mel.element_size() for e in dataset.examples)
    frames = sum(e.mel.shape[-1] for e in dataset.examples)
    hours = frames * 256 / 22050 / 3600
    return {"utterances": len(items), "audio_hours": round(hours, 3), "load_s": round(seconds, 2),
            "mel_mib": round(mel_bytes / 2**20, 1), "mel_mib_per_hour": round(mel_bytes / 2**20 / hours, 1),
            "rss_added_by_dataset_mib": round(held_rss, 1)}


def measure_train(corpus: str, steps: int, workdir: str, cache_dir: str) -> dict[str, Any]:
    """In a fresh process (a trial's): train ``steps`` tiny-preset steps; median s/step and peak resident memory."""
    from trainer.config import preset
    from trainer.training.loop import train

    config = preset("tiny").replace(max_steps=steps + 2, val_interval=steps + 2, checkpoint_interval=steps + 2,
                                    log_interval=1, plots=False, fr_utterances=0, val_size=2, controller=False,
                                    fr_asr="off", device="cpu", cache_dir=cache_dir)
    run_dir = Path(workdir) / f"scale-{int(time.time() * 1000)}"
    train(config, corpus, run_dir, show_progress=False)
    step_s = [r["sec_per_step"] for r in timed_steps(run_dir)]
    return {"median_sec_per_step": round(statistics.median(step_s), 3), "steps_timed": len(step_s),
            "trial_peak_rss_mib": round(_peak_rss_mib(), 1)}


def _in_fresh_process(function: Any, *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def corpus_row(corpus: Path, steps: int, runs: Path) -> CorpusRow:
    """Return one corpus's figures: its load with an empty and a filled cache, then its training, each in a fresh
    process (so each memory figure is its own)."""
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = _in_fresh_process(measure_load, str(corpus), cache_dir)  # fills the cache
        row = _in_fresh_process(measure_load, str(corpus), cache_dir)  # memory measured on a clean process
        row["load_s_cold_cache"], row["load_s_warm_cache"] = cold["load_s"], row.pop("load_s")
        row.update(_in_fresh_process(measure_train, str(corpus), steps, str(runs), cache_dir))
    return row


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--utterances", type=int, default=3000, help="size of the large corpus (>= 3000 asked)")
    parser.add_argument("--steps", type=int, default=10, help="timed tiny-preset steps per corpus")
    output_arguments(parser)


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ScaleRecord:
    if args.utterances < 300 or args.steps < 1:
        parser.error("--utterances must be >= 300 and --steps >= 1")
    started = time.perf_counter()
    corpora = [ensure_corpus(args.workdir, 300), ensure_corpus(args.workdir, args.utterances)]
    made_s = time.perf_counter() - started
    rows = [corpus_row(corpus, args.steps, args.workdir / "runs") for corpus in corpora]
    small, large = rows
    per_hour = statistics.mean(r["mel_mib_per_hour"] for r in rows)
    projected_gb = per_hour * LJSPEECH_HOURS / 1024
    return {
        "corpora": rows, "corpus_build_s": round(made_s, 1),
        "mel_mib_per_hour": round(per_hour, 1), "projected_24h_gb": round(projected_gb, 2),
        "feature_budget_gb": FEATURE_BUDGET_GB, "fits_in_memory": projected_gb <= FEATURE_BUDGET_GB,
        "step_ratio_large_vs_small": round(large["median_sec_per_step"] / small["median_sec_per_step"], 3),
        "load_ratio_large_vs_small": round(large["load_s_warm_cache"] / max(small["load_s_warm_cache"], 1e-3), 2),
        "wall_s": round(time.perf_counter() - started, 1),
    }


BENCH = Bench("scale", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
