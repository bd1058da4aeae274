"""The dataset of a training run: each utterance's ids and log-mel, computed once and kept in a feature cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from trainer.audio import mel as audio
from trainer.data.corpus import Utterance
from trainer.fileio import atomic_write
from trainer.text.cleaners import clean_text
from trainer.text.encode import text_to_ids_counted

if TYPE_CHECKING:
    from trainer.config import TrainConfig

FEATURE_VERSION = 1  # bump when mel computation changes, so old caches are not reused


CACHE_ENV = "SMART_TUNER_CACHE"  # the feature cache root, first choice


XDG_CACHE_ENV = "XDG_CACHE_HOME"  # the XDG base directory of user caches; the cache goes to its smart-tuner/


def default_cache_root() -> Path:
    """Return the feature cache root: $SMART_TUNER_CACHE, else $XDG_CACHE_HOME/smart-tuner, else ~/.cache/smart-tuner.

    An empty variable counts as unset, and so does a relative $XDG_CACHE_HOME: the XDG Base
    Directory specification says to ignore one.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get(XDG_CACHE_ENV)
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "smart-tuner"


class FeatureCache:
    """Log-mels computed once per audio file and audio setting, shared by every run and trial.

    A file's key hashes its absolute path, size and mtime; the folder's name hashes the
    audio settings. Writes are atomic (temp file + rename), so trials filling the cache
    at once never read a torn file; a changed file or setting misses and is recomputed.
    """

    def __init__(self, root: str | Path | None = None, peak_normalize: bool = False) -> None:
        settings = {
            "version": FEATURE_VERSION, "sample_rate": audio.SAMPLE_RATE, "n_fft": audio.N_FFT,
            "hop": audio.HOP_LENGTH, "win": audio.WIN_LENGTH, "n_mels": audio.N_MELS, "fmin": audio.F_MIN,
            "fmax": audio.F_MAX, "log_clamp": audio.LOG_CLAMP, "peak_normalize": peak_normalize,
        }
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        self.folder = Path(root or default_cache_root()) / f"mels-{digest}"
        self.peak_normalize = peak_normalize
        self.hits = 0
        self.misses = 0

    def path_for(self, wav_path: Path) -> Path:
        """Return the cache file that holds (or will hold) ``wav_path``'s mel."""
        resolved = wav_path.resolve()
        stat = resolved.stat()
        key = hashlib.sha1(f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        return self.folder / key[:2] / f"{key}.npy"

    def mel(self, wav_path: str | Path) -> torch.Tensor:
        """Return the log-mel (80, frames) float32 of ``wav_path``, from the cache or computed and stored."""
        wav_path = Path(wav_path)
        cached = self.path_for(wav_path)
        if cached.is_file():
            try:
                array = np.load(cached, allow_pickle=False)
                self.hits += 1
                return torch.from_numpy(array)
            except (ValueError, OSError, EOFError):
                pass  # unreadable entry (e.g. disk full when written): recompute and replace it
        wav, _ = audio.load_audio(wav_path, audio.SAMPLE_RATE, self.peak_normalize)
        mel = audio.mel_spectrogram(wav, audio.SAMPLE_RATE).contiguous()
        atomic_write(cached, lambda handle: np.save(handle, mel.numpy(), allow_pickle=False))
        self.misses += 1
        return mel


@dataclass
class Example:
    """One training example: token ids (N,) and log-mel (80, frames)."""

    id: str
    text_ids: torch.Tensor
    mel: torch.Tensor
    text: str = ""  # the cleaned text (numbers as words): what a recogniser's transcript is scored against


class TTSDataset(torch.utils.data.Dataset):
    """Utterances as (ids, mel) examples; mels come from the FeatureCache and stay in memory."""

    def __init__(self, items: list[Utterance], cache: FeatureCache, lang: str = "en",
                 on_unknown: str = "error", show_progress: bool = False, frontend: str = "characters") -> None:
        from tqdm import tqdm

        self.examples: list[Example] = []
        progress = tqdm(items, desc="features", unit="utt", disable=not show_progress, leave=False)
        for item in progress:
            ids, _ = text_to_ids_counted(item.text, lang=lang, utterance_id=item.id, on_unknown=on_unknown,
                                         frontend=frontend)
            self.examples.append(Example(item.id, torch.tensor(ids, dtype=torch.long), cache.mel(item.wav_path),
                                         clean_text(item.text, lang)))

    @classmethod
    def for_config(cls, items: list[Utterance], config: TrainConfig, show_progress: bool = False) -> TTSDataset:
        """Return the dataset of ``items`` as ``config`` reads text and audio (language, frontend, cache)."""
        return cls(items, FeatureCache(config.cache_dir, config.peak_normalize), config.lang, config.on_unknown_char,
                   show_progress, frontend=config.model.text_frontend)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> Example:
        return self.examples[index]

    def frame_lengths(self) -> list[int]:
        """Return each example's mel length in frames, in dataset order."""
        return [e.mel.shape[-1] for e in self.examples]

    def frames_per_character(self) -> float:
        """Return total mel frames / total tokens: the corpus's speaking rate, used to predict lengths."""
        frames = sum(e.mel.shape[-1] for e in self.examples)
        chars = sum(len(e.text_ids) for e in self.examples)
        return frames / max(chars, 1)

