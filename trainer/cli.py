"""`trainer` commands: make-corpus, check-data, plan, train, evaluate, synth, export-mels.

Bad input ends with one line on stderr naming the file, line or key, and exit code 2;
a corpus with blocking problems prints its report and exits 1; an internal error exits 1
and ``--debug`` shows its traceback (``trainer.console``).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.console import EXIT_FAILED, Parser, add_debug_flag, add_version_flag, main_with
from trainer.errors import UserError
from trainer.presets import DEFAULT_PRESET, PRESETS
from trainer.text.symbols import LANGUAGES
from trainer.tracking import DEFAULT_EXPERIMENT, TRACKING_URI_ENV

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.tracking import RunTracker

EXIT_DATA_REPORT = EXIT_FAILED
DEVICES = ("auto", "cpu", "cuda")


def _add_data(p: argparse.ArgumentParser) -> None:
    """Add the corpus argument, positional (``trainer CMD DATA``) or as ``--data DATA``: both spellings work."""
    p.add_argument("data", nargs="?", type=Path, default=None, metavar="DATA",
                   help="corpus: an LJSpeech folder (metadata.csv + wavs/) or a path|text filelist")
    p.add_argument("--data", dest="data_option", type=Path, default=None, metavar="DATA",
                   help="the corpus, as an option (the same as the positional DATA)")


def _data(args: argparse.Namespace) -> Path:
    """Return the corpus given positionally or as --data; UserError when neither or two different ones."""
    if args.data is not None and args.data_option is not None and args.data != args.data_option:
        raise UserError(f"two corpora given: {args.data} and --data {args.data_option}; give one")
    data = args.data if args.data is not None else args.data_option
    if data is None:
        raise UserError(f"a corpus is required: trainer {args.command} DATA (or --data DATA)")
    return Path(data)


def _add_device(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("--device", choices=DEVICES, default=default,
                   help=f"{what}: auto (CUDA when present, else the CPU), cpu or cuda (default "
                        f"{default or 'the config key device, auto'})")


def _device(name: str) -> str:
    """Return the torch device name for ``auto``/``cpu``/``cuda``; UserError for cuda without a CUDA device."""
    import torch  # lazy: --help and argument errors stay fast

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible (use --device auto or cpu)")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _overrides(items: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Return ``(item, {key: value})`` of each ``--set KEY=VALUE``; the value is read as YAML (``1e-4`` a float).

    A key ``model.NAME`` is the model key NAME, as nested under ``model:`` in a config file; a
    config file's flat spelling (``attention_dim``) works too.
    """
    import yaml

    from trainer.yamlio import safe_load

    parsed = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set learning_rate=1e-4")
        if key == "preset":
            raise UserError(f"--set {item}: the preset is chosen with --preset (or the key preset in --config)")
        try:
            value = safe_load(text)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or type(err).__name__  # the full message spans lines
            raise UserError(f"--set {item}: the value is not valid YAML ({problem})") from None
        name = key.removeprefix("model.")
        parsed.append((item, {"model": {name: value}} if name != key else {key: value}))
    return parsed


def _add_make_corpus(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-corpus", help="write a synthetic corpus (eSpeak NG or flite) in LJSpeech layout",
                       description="Synthesise a deterministic corpus (metadata.csv + wavs/) with eSpeak NG "
                                   "(bundled) or flite (the Debian/Ubuntu package flite; English).")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--lang", default="en", choices=LANGUAGES,
                   help="language (default en; de, es and fr have no built-in sentences: give --text)")
    p.add_argument("--utterances", type=int, default=100, help="number of utterances (default 100)")
    p.add_argument("--seed", type=int, default=0, help="sentence generator seed (default 0)")
    p.add_argument("--text", type=Path, default=None, help="text file, one sentence a line, instead of the generator")
    p.add_argument("--engine", default="espeak", choices=["espeak", "flite"],
                   help="speech engine (default espeak; flite's voices are the ones an English recogniser "
                        "understands, for intelligibility runs)")
    p.add_argument("--voice", default=None,
                   help="voice: eSpeak's, e.g. en-us+f3 (default: the language's), or flite's: rms (default), "
                        "kal16, awb, slt")
    p.add_argument("--vary-prosody", action="store_true",
                   help="vary rate and pitch per utterance (flite: the rate only)")
    p.add_argument("--open-vocabulary", action="store_true",
                   help="sentences from the shipped lexicon (en: over 3,000 words, ru: over 1,500) instead of the "
                        "small template generator, using only the 70%% of its words kept for training; with "
                        "--heldout-out also a held-out corpus whose sentences are mostly words training never says")
    p.add_argument("--heldout-out", type=Path, default=None, metavar="DIR",
                   help="with --open-vocabulary: also write the held-out corpus here (same voice and engine)")
    p.add_argument("--heldout-utterances", type=int, default=60, metavar="N",
                   help="held-out sentences (default 60)")
    p.set_defaults(run=_run_make_corpus)


def _run_make_corpus(args: argparse.Namespace) -> int:
    from trainer.corpora.make import make_corpus

    for flag, count in (("--utterances", args.utterances), ("--heldout-utterances", args.heldout_utterances)):
        if count < 1:
            raise UserError(f"{flag} must be >= 1, got {count}")
    if args.heldout_out is not None and not args.open_vocabulary:
        raise UserError("--heldout-out needs --open-vocabulary (the template generator has no held-out words)")
    if args.open_vocabulary and args.text is not None:
        raise UserError("--open-vocabulary and --text both choose the sentences: give one")
    texts = None
    if args.open_vocabulary:
        from trainer.corpora.lexicon.corpus_texts import open_vocabulary_texts

        held = args.heldout_utterances if args.heldout_out is not None else 0
        texts = open_vocabulary_texts(args.lang, args.utterances, held, args.seed)
    summary = make_corpus(args.out, lang=args.lang, utterances=args.utterances, seed=args.seed,
                          text_file=args.text, voice=args.voice, vary_prosody=args.vary_prosody,
                          engine=args.engine, texts=texts.train if texts is not None else None)
    print(f"wrote {summary}")
    if texts is not None and args.heldout_out is not None:
        held_summary = make_corpus(args.heldout_out, lang=args.lang, utterances=len(texts.heldout),
                                   seed=args.seed + 1, voice=args.voice, vary_prosody=args.vary_prosody,
                                   engine=args.engine, texts=texts.heldout)
        print(f"wrote {held_summary}")
        print(texts.disjointness_line())
    return 0


def _add_check_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-data", help="validate a corpus and print a summary and every problem",
                       description="Check a corpus (LJSpeech folder or path|text filelist). Exit 1 when a "
                                   "problem blocks training.")
    _add_data(p)
    p.add_argument("--lang", default="en", choices=LANGUAGES, help="the text's language (default en)")
    p.add_argument("--min-seconds", type=float, default=0.3, help="shortest usable clip in seconds (default 0.3)")
    p.add_argument("--max-seconds", type=float, default=12.0, help="longest usable clip in seconds (default 12)")
    p.add_argument("--drop-unknown-chars", action="store_true", help="treat unknown characters as droppable notes")
    p.set_defaults(run=_run_check_data)


def _run_check_data(args: argparse.Namespace) -> int:
    from trainer.data.corpus import check_corpus

    report = check_corpus(_data(args), lang=args.lang, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                          drop_unknown_chars=args.drop_unknown_chars)
    print("\n".join(report.summary_lines()))
    return EXIT_DATA_REPORT if report.blocking else 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train Tacotron2 on a corpus", description="Train Tacotron2 on a corpus.")
    _add_data(p)
    p.add_argument("--out", required=True, type=Path, help="run folder (config, metrics.jsonl, checkpoints/)")
    p.add_argument("--config", type=Path, default=None, help="YAML of TrainConfig keys (default: the preset's)")
    p.add_argument("--preset", default=None, choices=PRESETS, help=f"model preset (default {DEFAULT_PRESET})")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="set one TrainConfig key over the preset and --config, typed and checked like a config "
                        "file's (e.g. learning_rate=1e-4, ga_kind=kl); repeatable")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps to train")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--warm-start", type=Path, default=None, help="initialise weights from this checkpoint")
    _add_device(p, None, "where to train")
    p.add_argument("--skip-bad-items", action="store_true", help="train without the utterances check-data rejects")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--mlflow", action="store_true",
                   help="track the run in MLflow (metrics, validation pictures and audio, the best checkpoint) at "
                        "$MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in this folder; on whenever "
                        "$MLFLOW_TRACKING_URI is set")
    p.add_argument("--no-mlflow", action="store_true", help="do not track, even with $MLFLOW_TRACKING_URI set")
    p.add_argument("--experiment", default=DEFAULT_EXPERIMENT, metavar="NAME",
                   help=f"MLflow experiment of the run (default {DEFAULT_EXPERIMENT}); the run is named after --out")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from trainer.data.corpus import DataError
    from trainer.training.loop import train

    data = _data(args)
    config = _train_config(args)
    tracker = None
    if not args.no_mlflow and (args.mlflow or os.environ.get(TRACKING_URI_ENV)):
        from trainer.tracking import RunTracker  # lazy: imports mlflow only when tracking

        tracker = RunTracker.open(args.out, config.to_dict(), experiment=args.experiment)

    def synced(step: int, metrics: dict[str, float]) -> bool:
        if tracker is not None:
            tracker.sync(step)
        return False  # tracking never stops training

    try:
        result = train(config, data, args.out, callback=synced, resume=args.resume, warm_start=args.warm_start,
                       show_progress=not args.quiet)
    except DataError as err:
        _refused(tracker, args.out)
        print("\n".join(err.report.summary_lines()), file=sys.stderr)
        print(f"error: {err.report.source}: corpus has blocking problems (see above; --skip-bad-items to train "
              "without them)", file=sys.stderr)
        return EXIT_DATA_REPORT
    except UserError:
        _refused(tracker, args.out)
        raise
    except BaseException as err:
        if tracker is not None:
            tracker.finish("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None:
        tracker.finish("FINISHED", Path(result.run_dir) / "checkpoints" / "best.pt")
    # The last line says where the run ended and, when the controller stopped it early, why.
    ended = f"finished at step {result.step}" if result.stop is None else \
        f"stopped early at step {result.step} by the quality controller: {result.stop.reason}"
    final = result.final
    held_out = "" if final is None or config.selection_metric not in final.metrics else \
        f" ({final.metrics[config.selection_metric]:.4f} on all {final.sentences} held-out sentences)"
    print(f"{ended}; best {config.selection_metric} {result.best_metric:.4f}{held_out}; "
          f"checkpoints in {Path(result.run_dir) / 'checkpoints'}")
    return 0


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """Return the config ``trainer train`` runs: the resumed run's, or the preset's (or --config's) with --set.

    --max-steps, --device and --skip-bad-items apply to either. UserError for a flag a resumed
    run cannot take, nothing to resume, --device cuda without CUDA or a missing --warm-start.
    """
    from trainer.config import load_config, preset, with_overrides
    from trainer.training.run_folder import config_for_resume

    overrides = _overrides(args.overrides)
    if args.resume:
        # A resumed run continues exactly (same config, same next step); --max-steps may extend it.
        # Refused rather than ignored: a user who passes a config expects it to count.
        for flag, given in (("--set", overrides), ("--config", args.config), ("--preset", args.preset)):
            if given:
                raise UserError(f"{flag} cannot change a resumed run's config (--max-steps may extend it)")
        if not (args.out / "checkpoints" / "last.pt").is_file():
            raise UserError(f"{args.out}: nothing to resume (no checkpoints/last.pt)")
        config = config_for_resume(args.out, args.max_steps)
    else:
        preset_name = args.preset or DEFAULT_PRESET
        config = load_config(args.config, preset_name) if args.config else preset(preset_name)
        for item, change in overrides:  # one at a time, so an error names its --set
            config = with_overrides(config, change, f"--set {item}")
        if args.max_steps is not None:
            config = config.replace(max_steps=args.max_steps)
    if args.device:
        _device(args.device)  # cuda without a CUDA device is bad input, before anything is written
        config = config.replace(device=args.device)
    if args.skip_bad_items:
        config = config.replace(skip_bad_items=True)
    if args.warm_start is not None and not args.warm_start.is_file():
        raise UserError(f"{args.warm_start}: warm-start checkpoint not found")
    return config


def _refused(tracker: RunTracker | None, out: Path) -> None:
    """End the MLflow run of a training that refused its input: deleted if nothing ran, else failed."""
    if tracker is None:
        return
    if tracker.new and not (out / "metrics.jsonl").is_file():
        tracker.discard()
    else:
        tracker.finish("FAILED")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="synthesise a wav from text with a checkpoint (Griffin-Lim or HiFi-GAN)",
                       description="Free-running synthesis with a checkpoint; audio through Griffin-Lim, or a "
                                   "HiFi-GAN generator in the public checkpoint layout.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file (a run's checkpoints/best.pt)")
    p.add_argument("--text", required=True, help="the sentence to speak")
    p.add_argument("--out", required=True, type=Path, help="output .wav")
    _add_device(p, "auto", "where to synthesise")
    enhance = p.add_mutually_exclusive_group()
    enhance.add_argument("--enhance", action="store_true",
                         help="post-process the mel (ceiling, spectral smoothing, noise gate -60 dB below the speech "
                              "level, loudness, boundary fades); off by default: it raised the recogniser's word "
                              "error rate in bench/intelligibility.py")
    enhance.add_argument("--no-enhance", action="store_true", help="no mel post-processing (the default)")
    p.add_argument("--vocoder", default="griffin-lim", metavar="griffin-lim|hifigan:GENERATOR",
                   help="how the mel becomes audio: griffin-lim (default) or hifigan:PATH, a HiFi-GAN generator "
                        "checkpoint in the public layout (a dict with the 'generator' state dict)")
    p.add_argument("--vocoder-config", type=Path, default=None, metavar="CONFIG.json",
                   help="the HiFi-GAN generator's config.json (its V1/V2/V3 config, or a fine-tuned one's)")
    p.add_argument("--save-mel", type=Path, default=None, metavar="MEL.npy",
                   help="also write the mel the vocoder got, float32 (80, frames), natural-log magnitudes")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed of the synthesis (default 0). The prenet keeps a little dropout at inference "
                        "(prenet_dropout_inference), so each seed says the sentence a little differently; the same "
                        "seed, checkpoint and device give the same wav")
    p.set_defaults(run=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    import numpy as np
    import torch  # lazy, as every command's heavy imports: --help and argument errors stay fast

    from trainer.audio.mel import SAMPLE_RATE, write_wav
    from trainer.fileio import atomic_write_bytes
    from trainer.synthesis.enhance import EnhancerConfig
    from trainer.synthesis.infer import load_model, synthesize
    from trainer.synthesis.vocoder import make_vocoder

    device = _device(args.device)
    vocoder = make_vocoder(args.vocoder, args.vocoder_config, device)  # a bad vocoder fails before any work
    model, config = load_model(args.checkpoint, device)
    torch.manual_seed(args.seed)  # seeds CUDA's generators too
    result = synthesize(model, config, args.text, enhancer=EnhancerConfig() if args.enhance else None,
                        vocoder=vocoder)
    if args.save_mel is not None:
        buffer = io.BytesIO()
        np.save(buffer, result.mel.numpy(), allow_pickle=False)
        atomic_write_bytes(args.save_mel, buffer.getvalue())
    write_wav(args.out, result.wav)
    note = " (stop gate never fired: hit max decoder steps)" if result.hit_max else ""
    print(f"wrote {args.out}: {result.wav.shape[0] / SAMPLE_RATE:.2f} s{note}")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a checkpoint free-running on held-out sentences; prints JSON",
                       description="Synthesise held-out sentences from text alone with a checkpoint, each with its "
                                   "own fixed seed (the same checkpoint always gets the same score), and print the "
                                   "free-running figures (fr_mcd_sl, the default objective; fr_mcd, stop and "
                                   "alignment figures; fr_wer where an English recogniser is installed) and each "
                                   "sentence's scores as one JSON object. The sentences are DATA's held-out split "
                                   "as the checkpoint's run made it (pass its training corpus), or with --all every "
                                   "usable utterance of DATA (a corpus the run never saw).")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file (a run's checkpoints/best.pt)")
    _add_data(p)
    p.add_argument("--all", action="store_true", dest="every_utterance",
                   help="score every usable utterance of DATA, not only the run's held-out split")
    p.add_argument("--sentences", type=int, default=None, metavar="N", help="score only the first N sentences")
    p.add_argument("--asr", choices=("auto", "on", "off"), default=None,
                   help="fr_wer/fr_cer by the English recogniser (default: the checkpoint's fr_asr), and the error "
                        "rates of words the run heard in training and of words it never heard (fr_wer_seen, "
                        "fr_wer_unseen)")
    p.add_argument("--seen-from", type=Path, default=None, metavar="CORPUS",
                   help="with --all: the run's training corpus, whose training sentences' words count as seen")
    _add_device(p, "auto", "where to synthesise")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from trainer.data.corpus import DataError
    from trainer.training.final import evaluate_checkpoint

    if args.sentences is not None and args.sentences < 1:
        raise UserError(f"--sentences must be >= 1, got {args.sentences}")
    data = _data(args)
    if not args.checkpoint.is_file():
        raise UserError(f"{args.checkpoint}: checkpoint not found")
    try:
        evaluation = evaluate_checkpoint(args.checkpoint, data, every_utterance=args.every_utterance,
                                         sentences=args.sentences, device=_device(args.device), asr=args.asr,
                                         seen_from=args.seen_from)
    except DataError as err:
        print("\n".join(err.report.summary_lines()), file=sys.stderr)
        print(f"error: {err.report.source}: no usable utterance to evaluate (see above)", file=sys.stderr)
        return EXIT_DATA_REPORT
    print(json.dumps({"checkpoint": str(args.checkpoint), "data": str(data), **evaluation.to_json()}, indent=1))
    return 0


def _add_export_mels(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-mels", help="write teacher-forced mels of a corpus, to fine-tune a vocoder on",
                       description="Predict every usable utterance's mel with teacher forcing (aligned frame for "
                                   "frame with its wav) and write OUT/<id>.npy, float32 (80, frames): what "
                                   "HiFi-GAN's fine-tuning reads as input mels.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint file (a run's checkpoints/best.pt)")
    _add_data(p)
    p.add_argument("--out", required=True, type=Path, help="output folder for the .npy files")
    p.add_argument("--batch-size", type=int, default=16, help="utterances per forward pass (default 16)")
    _add_device(p, "auto", "where to run the model")
    p.set_defaults(run=_run_export_mels)


def _run_export_mels(args: argparse.Namespace) -> int:
    from trainer.data.corpus import DataError
    from trainer.synthesis.export_mels import export_mels

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    data = _data(args)
    if not args.checkpoint.is_file():
        raise UserError(f"{args.checkpoint}: checkpoint not found")
    try:
        summary = export_mels(args.checkpoint, data, args.out, _device(args.device), args.batch_size)
    except DataError as err:
        print("\n".join(err.report.summary_lines()), file=sys.stderr)
        print(f"error: {err.report.source}: no usable utterance (see above)", file=sys.stderr)
        return EXIT_DATA_REPORT
    print(f"wrote {summary}")
    return 0


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="plan epochs and steps from the corpus's size and voice complexity",
                       description="Epoch planner: dataset size class x voice complexity (pitch, energy, rate).")
    _add_data(p)
    p.add_argument("--batch-size", type=int, default=12, help="utterances per batch (default 12)")
    p.add_argument("--grad-accum", type=int, default=3, help="gradient accumulation steps (default 3)")
    p.add_argument("--lang", default="en", choices=LANGUAGES, help="the text's language (default en)")
    p.set_defaults(run=_run_plan)


def _run_plan(args: argparse.Namespace) -> int:
    from trainer.training.plan import plan_training

    if args.batch_size < 1 or args.grad_accum < 1:
        raise UserError("--batch-size and --grad-accum must be >= 1")
    plan = plan_training(_data(args), args.batch_size, args.grad_accum, lang=args.lang)
    print("\n".join(plan.explain()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `trainer` command."""
    parser = Parser(prog="trainer", description="Tacotron2 trainer of Smart Tuner.")
    add_debug_flag(parser)
    add_version_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    for add in (_add_make_corpus, _add_check_data, _add_plan, _add_train, _add_evaluate, _add_synth,
                _add_export_mels):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `trainer` console script; returns the exit code."""
    return main_with(build_parser, argv, "trainer")


if __name__ == "__main__":
    sys.exit(main())
