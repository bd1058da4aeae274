"""Open-vocabulary intelligibility against training steps, and whether the objective ranks what a listener hears.

Scores every kept step checkpoint of one run (``--run``: ``trainer train ... --set
keep_step_checkpoints=true``) on a held-out corpus whose sentences are mostly words the run
never heard (``--heldout``: ``trainer make-corpus --open-vocabulary --heldout-out``), as
``trainer evaluate --all`` does: each sentence synthesised free-running with its own seed,
MCD-DTW-SL and MCD-DTW against the recording, the stop figures, and what pocketsphinx hears
through Griffin-Lim: the word error rate of all words, of words the run's training sentences
contain (``--train-corpus``) and of words they never contain, and the character error rate.
Beside the curve: the held-out recordings' own WER and their Griffin-Lim resynthesis's (the
ceiling; the goal is twice it).

The objective's validity on the same checkpoints: Spearman ρ between each candidate objective
(fr_mcd_sl, fr_mcd, the run's teacher-forced val_mel_postnet_l1 at that step) and the held-out
WER, and broken outputs scored on the same sentences (an untrained, never-aligning model;
silence; the last checkpoint's speech run on past its end; its first four frames only;
noise) against every aligned checkpoint. Each checkpoint's scores are cached under
``--workdir``, so a rerun while the run goes on scores only its new checkpoints.

    python bench/open_vocabulary.py --run RUN --train-corpus CORPUS --heldout HELDOUT [--sentences 60]
                                    [--every 250] [--device cpu]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from harness.common import output_arguments, positive_int, say
from harness.runner import Bench
from harness.speech import reference_rates
from harness.stats import spearman
from sections.open_vocabulary import ALIGNED_DIAGONALITY, ALIGNED_STOP_ERROR, GOAL, BrokenScores, OpenVocabularyRecord

FIGURES = ("fr_mcd_sl", "fr_mcd", "fr_wer", "fr_cer", "fr_wer_seen", "fr_wer_unseen", "fr_stop_error",
           "fr_hit_max_rate", "fr_diagonality", "fr_length_ratio")
OBJECTIVES = ("fr_mcd_sl", "fr_mcd", "val_mel_postnet_l1")  # candidates ranked against the held-out WER


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", type=Path, required=True, help="run folder whose checkpoints/step_*.pt are scored")
    parser.add_argument("--train-corpus", type=Path, required=True, help="the corpus the run trained on")
    parser.add_argument("--heldout", type=Path, required=True, help="held-out corpus of mostly unseen words")
    parser.add_argument("--sentences", type=positive_int, default=60, help="held-out sentences scored (default 60)")
    parser.add_argument("--every", type=positive_int, default=250, help="score every N steps' checkpoint (250)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    output_arguments(parser)


def checkpoint_scores(checkpoint: Path, args: argparse.Namespace, cache: Path) -> dict[str, Any]:
    """Return one checkpoint's final evaluation figures on the held-out corpus (cached by file and settings)."""
    from trainer.training.final import evaluate_checkpoint

    stat = checkpoint.stat()
    key = hashlib.sha256(json.dumps([str(checkpoint.resolve()), stat.st_size, stat.st_mtime_ns, str(args.heldout),
                                     args.sentences]).encode()).hexdigest()[:16]
    cached = cache / f"{checkpoint.stem}-{key}.json"
    if cached.is_file():
        return dict(json.loads(cached.read_text()))
    started = time.perf_counter()
    evaluation = evaluate_checkpoint(checkpoint, args.heldout, every_utterance=True, sentences=args.sentences,
                                     device=args.device, asr="on", seen_from=args.train_corpus)
    scores = {"step": evaluation.step, **{k: round(evaluation.metrics[k], 4) for k in FIGURES
                                          if k in evaluation.metrics},
              "seconds": round(time.perf_counter() - started, 1)}
    cache.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(scores))
    return scores


def teacher_forced(run: Path) -> dict[int, float]:
    """Return {step: val_mel_postnet_l1} of the run's validations (its own held-out split, teacher-forced)."""
    values = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "val" and "val_mel_postnet_l1" in record:
            values[int(record["step"])] = float(record["val_mel_postnet_l1"])
    return values


def broken_scores(last: Path, args: argparse.Namespace) -> dict[str, float]:
    """Return the mean fr_mcd_sl of each broken output on the held-out sentences (see the module docstring)."""
    import torch

    from trainer.data.batches import collate
    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import TTSDataset
    from trainer.evaluation.metrics import mel_cepstral_distortion_sl
    from trainer.evaluation.validate import _synthesise
    from trainer.model.architectures import build_model
    from trainer.synthesis.infer import load_model

    model, config = load_model(last, args.device)
    dataset = TTSDataset.for_config(read_corpus(args.heldout)[: args.sentences], config)
    device = torch.device(args.device)
    totals: dict[str, float] = {}
    for start in range(0, len(dataset), 16):
        batch = collate([dataset[i] for i in range(start, min(start + 16, len(dataset)))],
                        config.model.reduction_factor).to(device)
        spoken = _synthesise(model, batch, config, device, float(model.frames_per_char), 1.0)
        torch.manual_seed(0)
        untrained = build_model(config).to(device).eval()
        babble = _synthesise(untrained, batch, config.replace(stop_gate="fixed"), device,
                             float(model.frames_per_char), 0.0)
        for b in range(len(batch.ids)):
            reference = batch.mels[b, :, : int(batch.mel_lens[b])].cpu()
            ours = spoken.mel_of(b)
            low, high = float(reference.min()), float(reference.max())
            noise = torch.Generator().manual_seed(start + b)
            outputs = {
                "never_aligned": babble.mel_of(b) if int(babble.pred[b]) else babble.mel[b],
                "silence": torch.full_like(reference, low),
                "never_stops": torch.cat([ours, ours[:, -1:].repeat(1, 2 * reference.shape[1])], dim=1),
                "stops_after_a_few_frames": ours[:, :4],
                "noise": low + (high - low) * torch.rand(reference.shape, generator=noise),
            }
            for kind, mel in outputs.items():
                totals[kind] = totals.get(kind, 0.0) + mel_cepstral_distortion_sl(reference, mel)
    return {kind: round(total / len(dataset), 3) for kind, total in totals.items()}


def validity(curve: list[dict[str, Any]], broken: dict[str, float]) -> tuple[dict[str, float | None], BrokenScores]:
    """Return (Spearman ρ of each objective against fr_wer over the checkpoints, the broken outputs' standing)."""
    rho: dict[str, float | None] = {}
    for name in OBJECTIVES:
        points = [(p[name], p["fr_wer"]) for p in curve if name in p and "fr_wer" in p]
        rho[name] = spearman([x for x, _ in points], [y for _, y in points]) if len(points) >= 3 else None
    aligned = [p["fr_mcd_sl"] for p in curve
               if p.get("fr_diagonality", 0) >= ALIGNED_DIAGONALITY and p.get("fr_stop_error", 1) <= ALIGNED_STOP_ERROR]
    worst = max(aligned) if aligned else None
    standing: BrokenScores = {"scores": broken, "aligned_checkpoints": len(aligned), "worst_aligned": worst,
                              "all_rank_behind": worst is not None and all(v > worst for v in broken.values())}
    return rho, standing


def measure(args: argparse.Namespace, parser: argparse.ArgumentParser) -> OpenVocabularyRecord:
    import soundfile as sf

    from trainer.corpora.lexicon import tokenize, unseen_share
    from trainer.data.corpus import read_corpus
    from trainer.evaluation.asr import unavailable_reason

    if unavailable_reason("en") is not None:
        parser.error(str(unavailable_reason("en")))
    checkpoints = sorted((args.run / "checkpoints").glob("step_*.pt"))
    checkpoints = [c for c in checkpoints if int(c.stem.split("_")[1]) % args.every == 0]
    if not checkpoints:
        parser.error(f"--run {args.run}: no checkpoints/step_*.pt at a multiple of --every {args.every}")
    cache = args.workdir / "open_vocabulary" / hashlib.sha256(str(args.run.resolve()).encode()).hexdigest()[:12]
    started = time.perf_counter()
    references = reference_rates(args.heldout)
    losses = teacher_forced(args.run)
    curve = []
    for checkpoint in checkpoints:
        say("open_vocabulary", f"scoring {checkpoint.name}")
        point = checkpoint_scores(checkpoint, args, cache)
        if point["step"] in losses:
            point["val_mel_postnet_l1"] = losses[point["step"]]
        curve.append(point)
    say("open_vocabulary", f"broken outputs against {checkpoints[-1].name}")
    rho, broken = validity(curve, broken_scores(checkpoints[-1], args))
    train_texts = [item.text for item in read_corpus(args.train_corpus)]
    held_texts = [item.text for item in read_corpus(args.heldout)][: args.sentences]
    goal = GOAL * references["ceiling_wer"]
    return {
        "run": str(args.run), "model": _model_of(args.run), "device": args.device,
        "train_utterances": len(train_texts),
        "train_minutes": round(sum(sf.info(str(i.wav_path)).duration for i in read_corpus(args.train_corpus)) / 60, 1),
        "train_words": len({w for t in train_texts for w in tokenize(t)}),
        "heldout_sentences": len(held_texts), "unseen": unseen_share(train_texts, held_texts),
        "references": {k: round(v, 4) for k, v in references.items()}, "goal_wer": round(goal, 4),
        "curve": curve,
        "first_step_within_goal": next((p["step"] for p in curve if p.get("fr_wer", 1.0) <= goal), None),
        "spearman_vs_wer": rho, "broken": broken, "wall_s": round(time.perf_counter() - started, 1),
    }


def _model_of(run: Path) -> dict[str, Any]:
    """Return the run's network shape as its config.yaml gives it (the preset's name is not stored)."""
    import yaml

    model = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("model", {})
    return {k: model[k] for k in ("encoder_embedding_dim", "decoder_rnn_dim", "attention_rnn_dim", "reduction_factor",
                                  "text_frontend") if k in model}


BENCH = Bench("open_vocabulary", __doc__, arguments, measure)

if __name__ == "__main__":
    sys.exit(BENCH.main())
