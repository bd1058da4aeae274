"""Corpus readers, corpus checks, the mel feature cache, the bucketed batcher and collation.

A corpus is either a folder in LJSpeech layout (``metadata.csv`` with ``id|text|normalized
text`` and ``wavs/ID.wav``) or a filelist file (``path|text`` per line, relative paths
resolved against the list's folder).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import statistics
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch

from trainer import audio
from trainer.errors import CorpusError
from trainer.fileio import atomic_write
from trainer.text import clean_text, known_characters, text_to_ids_counted

if TYPE_CHECKING:
    from trainer.config import TrainConfig

FEATURE_VERSION = 1  # bump when mel computation changes, so old caches are not reused


@dataclass(frozen=True)
class Utterance:
    """One corpus entry: where it was declared (``source``:``line``) and what it says."""

    id: str
    text: str
    wav_path: Path
    source: Path
    line: int


def read_corpus(path: str | Path) -> list[Utterance]:
    """Return the utterances of an LJSpeech folder or a ``path|text`` filelist, in file order."""
    path = Path(path)
    if path.is_dir():
        metadata = path / "metadata.csv"
        if not metadata.is_file():
            raise CorpusError(f"{path}: not a corpus (no metadata.csv; give an LJSpeech folder or a filelist)")
        return _read_ljspeech(metadata)
    if path.is_file():
        return _read_filelist(path)
    raise CorpusError(f"{path}: no such corpus folder or filelist")


def _read_lines(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not part of the id
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except OSError as err:
        raise CorpusError(f"{path}: cannot read ({err.strerror})") from None
    rows = [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), start=1)]
    rows = [(number, line) for number, line in rows if line.strip()]
    if not rows:
        raise CorpusError(f"{path}: empty (no utterances)")
    return rows


def _read_ljspeech(metadata: Path) -> list[Utterance]:
    items = []
    for number, line in _read_lines(metadata):
        fields = line.split("|")
        if len(fields) < 2:
            raise CorpusError(f"{metadata}:{number}: expected 'id|text|normalized text', got {line[:60]!r}")
        utt_id = fields[0].strip()
        if not utt_id:
            raise CorpusError(f"{metadata}:{number}: empty id")
        normalized = fields[2] if len(fields) > 2 and fields[2].strip() else fields[1]
        wav = metadata.parent / "wavs" / f"{utt_id}.wav"
        if Path(utt_id).is_absolute() or ".." in Path(utt_id).parts or "\\" in utt_id:
            # An id names a file inside wavs/; one that climbs out would read (and cache) any file.
            raise CorpusError(f"{metadata}:{number}: id {utt_id!r} leaves the corpus's wavs/ folder")
        items.append(Utterance(utt_id, normalized.strip(), wav, metadata, number))
    return items


def _filelist_id(declared: Path) -> str:
    """Return an utterance id for a filelist path: the relative path without suffix (so
    spk1/001.wav and spk2/001.wav differ), or just the file stem for absolute and ../ paths."""
    if declared.is_absolute() or ".." in declared.parts:
        return declared.stem
    return declared.with_suffix("").as_posix()


def _read_filelist(filelist: Path) -> list[Utterance]:
    items = []
    for number, line in _read_lines(filelist):
        fields = line.split("|")
        if len(fields) < 2:
            raise CorpusError(f"{filelist}:{number}: expected 'path|text', got {line[:60]!r}")
        declared = Path(fields[0].strip())
        wav = declared if declared.is_absolute() else filelist.parent / declared
        items.append(Utterance(_filelist_id(declared), fields[1].strip(), wav, filelist, number))
    return items


# --------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Problem:
    """One finding about one utterance; ``blocking`` ones stop training unless skipped."""

    utterance: str
    where: str  # "file:line" of the declaration, or the audio file
    kind: str
    message: str
    blocking: bool = True

    def line(self) -> str:
        """Return a one-line human description."""
        level = "error" if self.blocking else "note"
        return f"{level}: {self.where}: {self.utterance}: {self.kind}: {self.message}"


@dataclass
class CorpusReport:
    """What ``check_corpus`` found: summary figures and every problem."""

    source: Path
    utterances: int = 0
    usable: list[Utterance] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)  # utterance id -> seconds
    characters: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)

    @property
    def blocking(self) -> list[Problem]:
        """Return the problems that stop training."""
        return [p for p in self.problems if p.blocking]

    @property
    def total_seconds(self) -> float:
        """Return the total duration of the usable utterances, in seconds."""
        return sum(self.durations[u.id] for u in self.usable)

    def summary_lines(self) -> list[str]:
        """Return the human summary (counts, durations, characters, problems)."""
        durations = [self.durations[u.id] for u in self.usable]
        lines = [f"corpus: {self.source}", f"utterances: {self.utterances} ({len(self.usable)} usable)"]
        if durations:
            lines.append(
                f"total duration: {sum(durations) / 60:.1f} min; per clip min {min(durations):.2f} s, "
                f"median {statistics.median(durations):.2f} s, max {max(durations):.2f} s"
            )
        lines.append(f"characters seen ({len(self.characters)}): {''.join(sorted(self.characters))!r}")
        blocking = len(self.blocking)
        lines.append(f"problems: {blocking} blocking, {len(self.problems) - blocking} notes")
        lines.extend("  " + p.line() for p in self.problems)
        return lines


def check_corpus(path: str | Path, *, lang: str = "en", min_seconds: float = 0.3, max_seconds: float = 12.0,
                 drop_unknown_chars: bool = False) -> CorpusReport:
    """Return a CorpusReport for the corpus at ``path``: every utterance's audio header and text checked.

    Raises CorpusError only when the corpus cannot be read at all.
    """
    path = Path(path)
    items = read_corpus(path)
    report = CorpusReport(source=path, utterances=len(items))
    seen: dict[str, str] = {}
    for item in items:
        where = f"{item.source}:{item.line}"
        found: list[Problem] = []
        problem = _problem_recorder(found, item.id, where)
        if item.id in seen:
            problem("duplicate id", f"also declared at {seen[item.id]}")
        seen.setdefault(item.id, where)
        if not item.text:
            problem("empty text", "no text to speak")
        else:
            report.characters.update(item.text)
            kept, dropped = known_characters(item.text, lang=lang, utterance_id=item.id, on_unknown="drop")
            if dropped:
                chars = ", ".join(f"{c!r} (U+{ord(c):04X}) x{n}" for c, n in sorted(dropped.items()))
                problem("unknown characters", chars + (" (dropped)" if drop_unknown_chars else ""),
                        blocking=not drop_unknown_chars)
            if not kept:
                # Dropping may leave nothing: a zero-length text cannot be attended to.
                problem("empty text", "no known characters left after cleaning")
        seconds = _audio_seconds(item, problem)
        if seconds is not None:
            report.durations[item.id] = seconds
            if seconds < min_seconds:
                problem("too short", f"{seconds:.2f} s < {min_seconds} s", at=str(item.wav_path))
            elif seconds > max_seconds:
                problem("too long", f"{seconds:.2f} s > {max_seconds} s", at=str(item.wav_path))
        report.problems.extend(found)
        if not any(p.blocking for p in found):
            report.usable.append(item)
    return report


def _problem_recorder(found: list[Problem], utterance: str, where: str) -> Callable[..., None]:
    """Return ``problem(kind, message, blocking=True, at=where)``, which appends one Problem of ``utterance``."""

    def problem(kind: str, message: str, blocking: bool = True, at: str = where) -> None:
        found.append(Problem(utterance, at, kind, message, blocking))

    return problem


def _audio_seconds(item: Utterance, problem: Callable[..., None]) -> float | None:
    """Return the clip's duration in seconds, or None after recording why it is unusable."""
    if not item.wav_path.is_file():
        problem("missing audio", f"{item.wav_path} does not exist")
        return None
    try:
        info = sf.info(str(item.wav_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        problem("unreadable audio", str(err).splitlines()[0], at=str(item.wav_path))
        return None
    if info.frames <= 0 or info.samplerate <= 0:
        problem("unreadable audio", "no samples", at=str(item.wav_path))
        return None
    if info.samplerate != audio.SAMPLE_RATE:
        problem("sample rate", f"{info.samplerate} Hz, resampled to {audio.SAMPLE_RATE} Hz", blocking=False,
                at=str(item.wav_path))
    return info.frames / info.samplerate


# --------------------------------------------------------------------------- feature cache


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


# --------------------------------------------------------------------------- dataset and batches


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


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                     shuffle: bool = True) -> list[list[int]]:
    """Return the batches (lists of dataset indices) of one epoch, grouping similar lengths.

    Indices are shuffled, cut into buckets of 8 batches, sorted by length inside each
    bucket and batched, then the batch order is shuffled: little padding, still random.
    Deterministic in (seed, epoch), which is what makes ``--resume`` exact.
    """
    order = list(range(len(lengths)))
    rng = random.Random(seed * 1_000_003 + epoch)
    if shuffle:
        rng.shuffle(order)
    bucket = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start:start + bucket], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    """A padded batch. Shapes: B utterances, N tokens, S decoder steps, F = S * r frames."""

    ids: list[str]
    text: torch.Tensor  # (B, N) long, 0-padded
    text_lens: torch.Tensor  # (B,) long
    mels: torch.Tensor  # (B, 80, F) float, padded with log(1e-5) (silence)
    mel_lens: torch.Tensor  # (B,) true frame counts
    out_lens: torch.Tensor  # (B,) true decoder steps = ceil(mel_lens / r)
    gate_targets: torch.Tensor  # (B, S) float: 1 at each utterance's last decoder step, else 0

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.text, self.text_lens, self.mels, self.mel_lens, self.out_lens, self.gate_targets

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch with every tensor on ``device`` (copies from pinned memory do not block)."""
        return Batch(self.ids, *(t.to(device, non_blocking=True) for t in self._tensors()))

    def pin_memory(self) -> Batch:
        """Return the batch in page-locked host memory, from which a CUDA copy runs asynchronously."""
        return Batch(self.ids, *(t.pin_memory() for t in self._tensors()))


class Prefetcher:
    """Hands out batches by their dataset indices; on CUDA it prepares the next one while the GPU works.

    ``get(indices, following)`` returns the batch of ``indices`` on ``device``. On CUDA a
    single background thread collates ``following`` into pinned memory meanwhile, so the
    step after this one finds its batch ready and copies it without blocking. On the CPU
    everything happens in the caller's thread: a helper thread would only take a core from
    the step. The batches and their order are the same either way.
    """

    def __init__(self, make: Callable[[list[int]], Batch], device: torch.device) -> None:
        self._make = make
        self._device = device
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if device.type == "cuda" else None
        self._pending: tuple[tuple[int, ...], Future[Batch]] | None = None

    def get(self, indices: list[int], following: list[int] | None) -> Batch:
        """Return the batch of ``indices`` on the device and start preparing ``following`` (None: nothing)."""
        pending, self._pending = self._pending, None
        batch = pending[1].result() if pending is not None and pending[0] == tuple(indices) else self._host(indices)
        if self._pool is not None and following is not None:
            self._pending = (tuple(following), self._pool.submit(self._host, following))
        return batch.to(self._device)

    def close(self) -> None:
        """Stop the background thread (a batch being prepared is finished, then dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending = None

    def _host(self, indices: list[int]) -> Batch:
        batch = self._make(indices)
        return batch.pin_memory() if self._pool is not None else batch


def collate(examples: list[Example], reduction_factor: int = 1) -> Batch:
    """Return a Batch from examples: padding, lengths and stop-gate targets per decoder step."""
    r = reduction_factor
    text_lens = torch.tensor([len(e.text_ids) for e in examples], dtype=torch.long)
    mel_lens = torch.tensor([e.mel.shape[-1] for e in examples], dtype=torch.long)
    out_lens = (mel_lens + r - 1) // r
    n_mels = examples[0].mel.shape[0]
    steps = int(out_lens.max())
    text = torch.zeros(len(examples), int(text_lens.max()), dtype=torch.long)
    mels = torch.full((len(examples), n_mels, steps * r), math.log(audio.LOG_CLAMP))
    gate = torch.zeros(len(examples), steps)
    for row, example in enumerate(examples):
        text[row, : len(example.text_ids)] = example.text_ids
        mels[row, :, : example.mel.shape[-1]] = example.mel
        gate[row, out_lens[row] - 1] = 1.0
    return Batch([e.id for e in examples], text, text_lens, mels, mel_lens, out_lens, gate)


def split_train_val(items: list[Utterance], val_size: int) -> tuple[list[Utterance], list[Utterance]]:
    """Return (train, val): the ``val_size`` utterances with the smallest id hash are held out.

    Hashing ids makes the split independent of file order and stable across runs.
    """
    if val_size < 0:
        raise ValueError(f"val_size must be >= 0, got {val_size}")
    val_size = min(val_size, max(len(items) - 1, 0))
    ranked = sorted(items, key=lambda u: hashlib.sha1(u.id.encode()).hexdigest())
    held = {u.id for u in ranked[:val_size]}
    return [u for u in items if u.id not in held], [u for u in items if u.id in held]
