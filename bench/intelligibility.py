"""Intelligibility of free-running synthesis against training steps: what an English recogniser hears.

On a flite corpus (a voice the recogniser understands), the tiny preset is trained for
``--steps`` steps with a checkpoint kept every ``--every`` steps; each checkpoint then speaks
``--heldout`` sentences no training step saw, and pocketsphinx transcribes them (Griffin-Lim
audio, with and without the mel enhancer). Beside the curve: the word error rate of the
recordings themselves and of their mels resynthesised by Griffin-Lim (the ceiling a perfect
acoustic model would reach with this vocoder). Variants (``--variants``) change one thing at
a time from the defaults: the reduction factor, the model size, the mel loss, characters instead
of phonemes as input,
prenet dropout at inference.
Prints JSON and appends it to bench/results.jsonl. Needs the asr extra and flite.

    python bench/intelligibility.py [--steps 3000] [--every 500] [--utterances 160] [--heldout 10]
                                    [--variants default,r1,...] [--jobs 2] [--device cpu] [--score RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from harness.common import made_once, output_arguments
from harness.runner import Bench
from harness.speech import reference_rates
from sections.intelligibility import IntelligibilityRecord, VariantRun

from trainer.presets import OVERRIDES

GOAL = 2.0  # the target: free-running WER at most this many times the resynthesis ceiling

# One change at a time from the tiny preset; the inference-only ones reuse the default run's checkpoints.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "r1": {"reduction_factor": 1, "max_decoder_steps": 800},
    "small": {k: v for k, v in OVERRIDES["small"].items() if OVERRIDES["tiny"].get(k) != v},  # the small preset
    "plain_loss": {"mel_loss": "l1", "perceptual_weight": 0.0, "style_weight": 0.0, "monotonic_weight": 0.0},
    "no_band_floor": {"spectral_band_floor": 0.0},
    "characters": {"text_frontend": "characters"},
    "phonemes": {"text_frontend": "phonemes"},  # the default since phonemes won this bench; kept for re-runs
}
INFERENCE_VARIANTS: dict[str, dict[str, Any]] = {"no_prenet_dropout_at_inference": {"prenet_dropout_inference": 0.0}}


def ensure_flite_corpus(workdir: Path, name: str, utterances: int, seed: int, voice: str) -> Path:
    """Return a flite corpus under ``workdir`` (made once; equal arguments give the same corpus)."""
    return made_once(workdir / f"flite-{voice}-{name}-{utterances}-seed{seed}", lang="en", utterances=utterances,
                     seed=seed, voice=voice, engine="flite")


def score_checkpoint(checkpoint: Path, heldout: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """Return WER/CER (plain and enhanced), stop behaviour and what was heard, for one checkpoint."""
    import torch

    from trainer.audio import mel as audio
    from trainer.data.corpus import read_corpus
    from trainer.evaluation.asr import error_rates, transcribe
    from trainer.model.architectures import build_model
    from trainer.synthesis.enhance import EnhancerConfig, enhance
    from trainer.synthesis.infer import load_model, synthesize

    model, config = load_model(checkpoint)
    if overrides:  # an inference-only change: the same weights in a model built with the new settings
        config = config.replace(**overrides)
        changed = build_model(config)
        changed.load_state_dict(model.state_dict())
        model = changed.eval()
    items = read_corpus(heldout)
    texts, plain, enhanced, ratios, hit_max = [], [], [], [], 0
    for k, item in enumerate(items):
        torch.manual_seed(k)  # prenet dropout stays on at inference: the same draw for every checkpoint
        reference_frames = audio.mel_spectrogram(audio.load_audio(item.wav_path)[0], audio.SAMPLE_RATE).shape[-1]
        limit = 2 * reference_frames // config.model.reduction_factor + 10
        speech = synthesize(model, config, item.text, max_decoder_steps=limit)
        texts.append(item.text)
        plain.append(transcribe(speech.wav, audio.SAMPLE_RATE))
        enhanced.append(transcribe(audio.griffin_lim(enhance(speech.mel, EnhancerConfig())), audio.SAMPLE_RATE))
        ratios.append(speech.mel.shape[-1] / reference_frames)
        hit_max += int(speech.hit_max)
    wer, cer = error_rates(texts, plain)
    wer_enhanced, cer_enhanced = error_rates(texts, enhanced)
    return {"wer": round(wer, 4), "cer": round(cer, 4), "wer_enhanced": round(wer_enhanced, 4),
            "cer_enhanced": round(cer_enhanced, 4), "length_ratio": round(sum(ratios) / len(ratios), 3),
            "hit_max": hit_max, "heard": plain}


def score_run(run_dir: Path, variant: str, heldout: Path) -> list[dict[str, Any]]:
    """Return the curve of one run: each step checkpoint's scores (and the inference variants' for default)."""
    curve = []
    for checkpoint in sorted((run_dir / "checkpoints").glob("step_*.pt")):
        step = int(checkpoint.stem.split("_")[1])
        curve.append({"step": step, **score_checkpoint(checkpoint, heldout, {})})
        for name, inference in INFERENCE_VARIANTS.items() if variant == "default" else ():
            curve[-1][name] = score_checkpoint(checkpoint, heldout, inference)
    return sorted(curve, key=lambda point: point["step"])


def run_variant(job: dict[str, Any]) -> VariantRun:
    """Train one variant and score its step checkpoints (runs in a worker process, one thread)."""
    import torch

    from trainer.config import preset
    from trainer.training.loop import train

    torch.set_num_threads(job["threads"])
    overrides = VARIANTS[job["variant"]]
    if job.get("score"):  # an earlier run (perhaps stopped early): score the checkpoints it has
        run_dir = Path(job["score"])
        return {"variant": job["variant"], "overrides": overrides, "train_wall_s": None, "run_dir": str(run_dir),
                "curve": score_run(run_dir, job["variant"], Path(job["heldout"]))}
    config = preset("tiny").replace(max_steps=job["steps"], val_interval=job["every"],
                                    checkpoint_interval=job["every"], keep_step_checkpoints=True, seed=job["seed"],
                                    device=job["device"], torch_threads=job["threads"], early_stop=False,
                                    fr_asr="off", plots=False, **overrides)
    run_dir = Path(job["workdir"]) / f"intelligibility-{job['variant']}-{int(time.time())}"
    started = time.perf_counter()
    train(config, job["corpus"], run_dir, show_progress=False)
    wall = time.perf_counter() - started
    return {"variant": job["variant"], "overrides": overrides, "train_wall_s": round(wall, 1), "run_dir": str(run_dir),
            "curve": score_run(run_dir, job["variant"], Path(job["heldout"]))}


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=3000, help="training steps per variant (default 3000)")
    parser.add_argument("--every", type=int, default=500, help="steps between scored checkpoints (default 500)")
    parser.add_argument("--utterances", type=int, default=160, help="training corpus size (default 160: ~9 min)")
    parser.add_argument("--heldout", type=int, default=10, help="unseen sentences scored (default 10)")
    parser.add_argument("--voice", default="rms", help="flite voice (default rms)")
    parser.add_argument("--variants", default="default", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--jobs", type=int, default=2, help="variants trained at once (default 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per variant (default 1: at the tiny size a second thread does not "
                             "pay, so two one-thread runs on two cores beat one two-thread run)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--score", type=Path, default=None, metavar="RUN_DIR",
                        help="train nothing: score the step checkpoints of an earlier run of this bench "
                             "(one that was stopped early, say); its variant is read from the folder name")
    output_arguments(parser)


def chosen_variants(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Return the variants to train (with ``--score``, the one its run folder names), or stop with a usage error."""
    if args.score is not None:
        if not (args.score / "checkpoints").is_dir():
            parser.error(f"--score {args.score}: no checkpoints folder")
        args.variants = args.score.name.split("-")[1] if args.score.name.count("-") >= 2 else "default"
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r} (choose from {', '.join(VARIANTS)})")
    from trainer.evaluation.asr import unavailable_reason

    reason = unavailable_reason("en")
    if reason is not None:
        parser.error(reason)
    return variants


def train_and_score(args: argparse.Namespace, variants: list[str], corpus: Path, heldout: Path,
                    goal: float) -> list[VariantRun]:
    """Train (or, with ``--score``, read) each variant ``--jobs`` at a time and score its curve against ``goal``."""
    jobs = [{"variant": v, "steps": args.steps, "every": args.every, "seed": args.seed, "device": args.device,
             "threads": args.threads, "corpus": str(corpus), "heldout": str(heldout),
             "workdir": str(args.workdir), "score": str(args.score) if args.score else None} for v in variants]
    with ProcessPoolExecutor(max_workers=max(1, min(args.jobs, len(jobs))), mp_context=get_context("spawn")) as pool:
        runs = list(pool.map(run_variant, jobs))
    for run in runs:
        reached = next((point["step"] for point in run["curve"] if point["wer"] <= goal), None)
        run["first_step_wer_within_goal"] = reached
    return runs


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> IntelligibilityRecord:
    variants = chosen_variants(args, parser)
    import soundfile as sf

    from trainer.config import TrainConfig
    from trainer.data.corpus import read_corpus

    args.workdir.mkdir(parents=True, exist_ok=True)
    corpus = ensure_flite_corpus(args.workdir, "train", args.utterances, 0, args.voice)
    heldout = ensure_flite_corpus(args.workdir, "heldout", args.heldout, 99, args.voice)
    minutes = sum(sf.info(str(item.wav_path)).duration for item in read_corpus(corpus)) / 60
    started = time.perf_counter()
    references = reference_rates(heldout)
    goal = GOAL * references["ceiling_wer"]
    runs = train_and_score(args, variants, corpus, heldout, goal)
    if args.score is not None:  # the steps the run reached, not the ones asked for
        args.steps = max((point["step"] for run in runs for point in run["curve"]), default=0)
    return {
        "preset": "tiny", "device": args.device, "steps": args.steps, "every": args.every,
        "scored_earlier_run": args.score is not None, "default_text_frontend": TrainConfig().model.text_frontend,
        "voice": args.voice, "utterances": args.utterances, "corpus_minutes": round(minutes, 1),
        "heldout": args.heldout, "seed": args.seed, "references": {k: round(v, 4) for k, v in references.items()},
        "goal_wer": round(goal, 4), "runs": runs, "wall_s": round(time.perf_counter() - started, 1),
    }


def curves(record: dict[str, Any]) -> str:
    """Return each variant's (step, WER) curve as one JSON line, for the terminal after the record."""
    return json.dumps({run["variant"]: [(p["step"], p["wer"]) for p in run["curve"]] for run in record["runs"]})


BENCH = Bench("intelligibility", __doc__, arguments, measure, epilogue=curves)

if __name__ == "__main__":
    sys.exit(BENCH.main())
