"""Paths, the CUDA check, argument types and corpora made on first use: what the bench modules share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository: bench/harness/ is two levels down
WORKDIR = ROOT / "studies" / "bench"  # corpora, runs and studies of the benches
RESULTS = ROOT / "bench" / "results.jsonl"
BASE_CHECKPOINT = ROOT / "tests" / "data" / "tiny-aligned.pt"  # the shipped base the fine-tuning benches start from


def output_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--workdir`` (corpora, runs) and ``--results`` (the JSON Lines file the record is appended to)."""
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--results", type=Path, default=RESULTS)


def require_cuda(parser: argparse.ArgumentParser, device: str) -> None:
    """Stop with a usage error when ``device`` is cuda and no CUDA device is visible."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible")


def bounded_int(low: int) -> Callable[[str], int]:
    """Return an argparse type accepting whole numbers >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


positive_int = bounded_int(1)


def made_once(corpus: Path, **make: Any) -> Path:
    """Return ``corpus``, made by ``trainer.corpora.make.make_corpus(corpus, **make)`` unless it already is."""
    from trainer.corpora.make import make_corpus

    if not (corpus / "metadata.csv").is_file():
        make_corpus(corpus, **make)
    return corpus


def ensure_corpus(workdir: Path, utterances: int, seed: int = 0, lang: str = "en") -> Path:
    """Return the bench's eSpeak corpus folder (made on first use: ``utterances`` sentences of ``seed`` in ``lang``)."""
    name = f"corpus-{lang}-{utterances}" if seed == 0 else f"corpus-{lang}-{utterances}-seed{seed}"
    return made_once(workdir / name, lang=lang, utterances=utterances, seed=seed)


def say(bench: str, text: str) -> None:
    """Print a progress line of ``bench`` on stderr (stdout carries the JSON)."""
    print(f"{bench}: {text}", file=sys.stderr, flush=True)
