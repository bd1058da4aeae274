"""Training throughput: seconds per step, mel frames per second, data-wait share, feature-cache effect. Prints JSON.

For each preset, trains ``--steps`` steps (plus two not counted, while allocations settle)
in this one process with the preset's thread count (tiny and small: one; base: torch's default,
one per core), logging every step, and reports the median seconds per
optimiser step, mel frames trained per second, and the share of step time spent waiting
for batches. The trainer holds every utterance's log-mel in memory, so the feature cache
decides the start-up cost, not the step: the bench times loading the corpus with an empty
cache (every mel computed) and with a filled one, and the cost of computing one batch's
mels from audio, which a loader without cache would pay on every step. On CUDA, AMP is on.

With ``--coqui-venv`` (an environment set up as ../shared/peers/coqui/README.md says), Coqui
TTS's Tacotron2 (r = 1, batch 16) then trains on the same corpus for ``--coqui-minutes`` with
its own trainer, timed per step by ../shared/peers/coqui/train_coqui.py; the entry gets its
s/step, mel frames/s and peak resident memory, and each preset's frames/s as a ratio of it
(run ``--batch-size 16`` for a like-for-like batch; the base preset has r = 1). Without the
environment the comparison is skipped with a note saying so. Appends to bench/results.jsonl.

    python bench/throughput.py [--presets tiny,base] [--steps 20,3] [--utterances 300]
                               [--device cpu|cuda] [--batch-size N] [--coqui-venv DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.common import ROOT, ensure_corpus, output_arguments
from harness.runner import Bench
from harness.training import WARMUP_STEPS, frames_per_second, timed_steps
from sections.throughput import CacheFigures, PresetRow, ThroughputRecord

from trainer.presets import PRESETS


def cache_figures(corpus: Path, batch_size: int) -> CacheFigures:
    """Return corpus load seconds with a cold and a warm feature cache, and one batch's mel cost (s)."""
    from trainer.audio import mel as audio
    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import FeatureCache, TTSDataset

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


def train_figures(preset_name: str, steps: int, corpus: Path, workdir: Path, device: str, default_threads: int,
                  batch_size: int | None = None) -> PresetRow:
    """Train ``steps`` + WARMUP_STEPS steps of ``preset_name``; return step time, frames/s and data-wait share.

    ``batch_size`` replaces the preset's batch and gradient accumulation (one batch a step). The
    preset's ``torch_threads`` applies (0: ``default_threads``, torch's default when the bench started).
    """
    import torch

    from trainer.config import preset
    from trainer.evaluation.validate import amp_dtype
    from trainer.training.loop import train

    total = steps + WARMUP_STEPS
    config = preset(preset_name).replace(max_steps=total, val_interval=total, checkpoint_interval=total,
                                         log_interval=1, device=device, plots=False, fr_utterances=0,
                                         val_size=2, controller=False)
    if batch_size is not None:
        config = config.replace(batch_size=batch_size, grad_accum_steps=1)
    run_dir = workdir / f"throughput-{preset_name}-{device}-{int(time.time())}"
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # torch's thread count is per process: an earlier preset's own setting must not carry over.
    torch.set_num_threads(config.torch_threads or default_threads)
    train(config, corpus, run_dir, show_progress=False)
    # The last step's time includes nothing else: validation runs after it is logged.
    timed = timed_steps(run_dir)
    step_s = statistics.median(r["sec_per_step"] for r in timed)
    return {
        "preset": preset_name, "steps_timed": len(timed), "batch_size": config.batch_size,
        "threads": torch.get_num_threads(),
        "grad_accum_steps": config.grad_accum_steps, "reduction_factor": config.model.reduction_factor,
        "median_sec_per_step": round(step_s, 3),
        "mel_frames_per_s": round(frames_per_second(timed), 1),
        "data_wait_share": round(sum(r["data_sec"] for r in timed) / sum(r["sec_per_step"] for r in timed), 4),
        "median_data_wait_s": round(statistics.median(r["data_sec"] for r in timed), 4),
        "amp": device == "cuda" and config.amp,
        **({"amp_dtype": str(amp_dtype(config)).removeprefix("torch."),
            "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20)} if device == "cuda" else {}),
    }


COQUI_SCRIPT = ROOT.parent / "shared" / "peers" / "coqui" / "train_coqui.py"
COQUI_WARMUP_STEPS = 3  # Coqui's first steps also allocate; not counted, as ours are not


def peak_rss_mib() -> int:
    """Return the peak resident memory (MiB) of this process."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # Linux reports KiB


def vm_hwm_mib(pid: int) -> int:
    """Return the peak resident memory (MiB) of process ``pid`` so far (0 when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)  # kB
    except (OSError, ValueError):
        pass
    return 0


def coqui_corpus(corpus: Path, run_dir: Path) -> Path:
    """Return a folder of Coqui's own beside the run: ``corpus``'s audio linked in, its metadata as Coqui reads it.

    Coqui reads ``metadata_train.csv`` (id|text|normalised text) from the corpus folder, so the corpus itself is not
    touched.
    """
    view = run_dir / "corpus"
    view.mkdir(parents=True)
    (view / "wavs").symlink_to((corpus / "wavs").resolve())
    lines = (corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()
    # Coqui's ljspeech formatter reads the third column (the normalised text): id|text|text.
    rows = [line.split("|") for line in lines if line.strip()]
    (view / "metadata_train.csv").write_text("".join(f"{r[0]}|{r[1]}|{r[-1]}\n" for r in rows), encoding="utf-8")
    return view


def run_coqui(python: Path, script: Path, view: Path, run_dir: Path, minutes: float, threads: int) -> tuple[int, int]:
    """Run Coqui's training script for ``minutes``; return (its exit code, its peak resident memory in MiB)."""
    # Coqui's own `trainer` package would be shadowed by ours on PYTHONPATH.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS=str(threads))
    with (run_dir / "coqui.log").open("w") as out:
        child = subprocess.Popen([str(python), str(script), "--corpus", str(view), "--out", str(run_dir / "out"),
                                  "--budget-min", str(minutes), "--save-every", "1000000"], cwd=run_dir, env=env,
                                 stdout=out, stderr=subprocess.STDOUT)
        # The kernel's high-water mark of the child's own memory (getrusage's children figure would
        # count this process's memory too: a forked child holds it until it execs).
        peak, deadline = 0, time.monotonic() + minutes * 60 + 900
        while child.poll() is None and time.monotonic() < deadline:
            peak = max(peak, vm_hwm_mib(child.pid))
            time.sleep(1.0)
        if child.poll() is None:
            child.kill()
        child.wait()
    return child.returncode, peak


def coqui_figures(venv: Path, script: Path, corpus: Path, workdir: Path, minutes: float,
                  threads: int) -> dict[str, Any]:
    """Train Coqui's Tacotron2 for ``minutes`` on ``corpus``; return its s/step, mel frames/s and peak RSS."""
    python = venv / "bin" / "python"
    if not python.is_file() or not script.is_file():
        missing = python if not python.is_file() else script
        return {"skipped": f"{missing} not found: set Coqui up as ../shared/peers/coqui/README.md says"}
    run_dir = workdir / f"throughput-coqui-{int(time.time())}"
    returncode, peak = run_coqui(python, script, coqui_corpus(corpus, run_dir), run_dir, minutes, threads)
    output = (run_dir / "coqui.log").read_text(errors="replace").strip().splitlines()
    steps_file = run_dir / "out" / "steps.jsonl"
    records = [json.loads(line) for line in steps_file.read_text().splitlines()] if steps_file.is_file() else []
    timed = [r for r in records if r["step"] > COQUI_WARMUP_STEPS]
    if returncode != 0 or not timed:
        tail = output[-1] if output else "no output"
        return {"skipped": f"Coqui's run ended with code {returncode} after {len(records)} steps: {tail}"}
    info = json.loads((run_dir / "out" / "info.json").read_text())
    return {
        "steps_timed": len(timed), "batch_size": info["batch_size"], "reduction_factor": info["r"],
        "parameters": info["n_params"], "coqui_tts": info["coqui_tts"], "torch": info["torch"],
        "median_sec_per_step": round(statistics.median(r["t_step"] for r in timed), 3),
        "mel_frames_per_s": round(sum(r["frames"] for r in timed) / sum(r["t_step"] for r in timed), 1),
        "peak_rss_mib": peak or None,
    }


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default="tiny,base")
    parser.add_argument("--steps", default="20,3", help="timed steps per preset, comma-separated in the same order")
    parser.add_argument("--utterances", type=int, default=300)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="one batch of this size per step for every preset (default: each preset's own)")
    parser.add_argument("--coqui-venv", type=Path, default=None, metavar="DIR",
                        help="Coqui TTS's environment (../shared/peers/coqui/README.md): train its Tacotron2 "
                             "side by side (default: skipped)")
    parser.add_argument("--coqui-script", type=Path, default=COQUI_SCRIPT, help=f"default {COQUI_SCRIPT}")
    parser.add_argument("--coqui-minutes", type=float, default=3.0, help="Coqui's training budget (default 3)")
    output_arguments(parser)


def coqui_side(args: argparse.Namespace, corpus: Path, rows: list[PresetRow], threads: int) -> dict[str, Any]:
    """Return Coqui's figures (or why it was skipped), adding each preset's frames/s as a ratio of its."""
    if args.coqui_venv is None:
        coqui: dict[str, Any] = {"skipped": "no --coqui-venv given"}
    else:
        coqui = coqui_figures(args.coqui_venv, args.coqui_script, corpus, args.workdir / "runs",
                              args.coqui_minutes, threads)
    if "skipped" not in coqui:
        for row in rows:
            row["frames_per_s_vs_coqui"] = round(row["mel_frames_per_s"] / coqui["mel_frames_per_s"], 3)
    return coqui


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ThroughputRecord:
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    steps = [int(s) for s in args.steps.split(",")]
    if len(steps) != len(presets) or any(p not in PRESETS for p in presets) or min(steps) < 1:
        parser.error(f"--presets takes names of {', '.join(PRESETS)}, and --steps one positive count per preset")

    import torch

    default_threads = torch.get_num_threads()
    corpus = ensure_corpus(args.workdir, args.utterances)
    started = time.perf_counter()
    cache = cache_figures(corpus, 16)
    rows = []
    for preset_name, count in zip(presets, steps, strict=True):
        rows.append(train_figures(preset_name, count, corpus, args.workdir / "runs", args.device, default_threads,
                                  args.batch_size))
        # A running maximum: each preset's row holds the peak of this process so far.
        rows[-1]["process_peak_rss_mib"] = peak_rss_mib()
    result: ThroughputRecord = {"device": args.device, "utterances": args.utterances, "cache": cache, "presets": rows}
    if args.device == "cpu":
        result["coqui"] = coqui_side(args, corpus, rows, default_threads)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


BENCH = Bench("throughput", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
