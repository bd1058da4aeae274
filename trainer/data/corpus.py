"""Corpus readers and checks: the utterances of a corpus, what is wrong with them, the validation split.

A corpus is either a folder in LJSpeech layout (``metadata.csv`` with ``id|text|normalized
text`` and ``wavs/ID.wav``) or a filelist file (``path|text`` per line, relative paths
resolved against the list's folder).
"""

from __future__ import annotations

import hashlib
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from trainer.audio import mel as audio
from trainer.errors import CorpusError, UserError
from trainer.text.encode import known_characters


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


class DataError(UserError):
    """The corpus has blocking problems; ``report`` lists them all (``trainer check-data`` prints the same)."""

    def __init__(self, report: CorpusReport) -> None:
        self.report = report
        first = report.blocking[0].line() if report.blocking else "no usable utterances"
        super().__init__(f"{report.source}: {len(report.blocking)} blocking problem(s); first: {first}")


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

