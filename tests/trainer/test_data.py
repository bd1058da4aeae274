"""Corpus readers, corpus checks, the feature cache, bucketed batches, collation and the split."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from trainer.audio import mel as audio
from trainer.data.batches import bucketed_batches, collate
from trainer.data.corpus import Utterance, check_corpus, read_corpus, split_train_val
from trainer.data.dataset import Example, FeatureCache, TTSDataset
from trainer.errors import CorpusError, UnknownCharacterError
from trainer.text.encode import text_to_ids

SR = audio.SAMPLE_RATE


def copy_corpus(demo_corpus: Path, tmp_path: Path) -> Path:
    target = tmp_path / "corpus"
    shutil.copytree(demo_corpus, target)
    return target


def write_tone(path: Path, seconds: float, rate: int = SR, freq: float = 220.0, amplitude: float = 0.3) -> None:
    t = np.arange(int(round(seconds * rate))) / rate
    sf.write(path, (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")


# --------------------------------------------------------------------------- readers


def test_read_ljspeech_folder(demo_corpus: Path):
    items = read_corpus(demo_corpus)
    metadata = demo_corpus / "metadata.csv"
    rows = [line.split("|") for line in metadata.read_text(encoding="utf-8").splitlines()]
    assert len(items) == len(rows) == 24
    for number, (item, row) in enumerate(zip(items, rows, strict=True), start=1):
        assert item.id == row[0]
        assert item.text == row[2]  # the normalized column is the one spoken
        assert item.wav_path == demo_corpus / "wavs" / f"{row[0]}.wav"
        assert item.wav_path.is_file()
        assert (item.source, item.line) == (metadata, number)


def test_ljspeech_two_columns_blank_lines_crlf_and_bom(tmp_path: Path):
    folder = tmp_path / "lj"
    folder.mkdir()
    text = "\ufeffA1|First text.|first text.\r\n\r\nA2|Second text.\r\nA3|Third.||\r\n"
    (folder / "metadata.csv").write_bytes(text.encode("utf-8"))
    items = read_corpus(folder)
    assert [(u.id, u.text, u.line) for u in items] == [
        ("A1", "first text.", 1), ("A2", "Second text.", 3), ("A3", "Third.", 4)]
    assert items[0].wav_path == folder / "wavs" / "A1.wav"


def test_read_filelist_resolves_relative_paths_against_its_folder(tmp_path: Path, monkeypatch):
    lists = tmp_path / "lists"
    lists.mkdir()
    absolute = tmp_path / "elsewhere" / "abs.flac"
    (lists / "train.txt").write_text(
        f"audio/one.wav|Hello there.\n\n../clips/two.wav|Second one.\n{absolute}|Third.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "..")  # the working folder must not matter
    items = read_corpus(lists / "train.txt")
    assert [(u.id, u.text, u.line) for u in items] == [
        ("audio/one", "Hello there.", 1), ("two", "Second one.", 3), ("abs", "Third.", 4)]
    assert items[0].wav_path == lists / "audio" / "one.wav"
    assert items[1].wav_path.resolve() == (tmp_path / "clips" / "two.wav").resolve()
    assert items[2].wav_path == absolute
    assert all(u.source == lists / "train.txt" for u in items)


@pytest.mark.parametrize("layout", ["ljspeech", "filelist"])
def test_malformed_line_names_file_and_line(tmp_path: Path, layout: str):
    if layout == "ljspeech":
        (tmp_path / "metadata.csv").write_text("A1|ok|ok\nA2|fine\nthis line has no separator\n", encoding="utf-8")
        target, listed = tmp_path, tmp_path / "metadata.csv"
    else:
        listed = target = tmp_path / "files.txt"
        target.write_text("a.wav|ok\n\nb.wav|fine\nb.wav\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus(target)
    line = 3 if layout == "ljspeech" else 4
    assert f"{listed}:{line}" in str(info.value)


def test_empty_id_names_file_and_line(tmp_path: Path):
    (tmp_path / "metadata.csv").write_text("A1|ok|ok\n |no id|no id\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"metadata\.csv:2: empty id"):
        read_corpus(tmp_path)


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "/abs/path", "sub/../../x", "..\\x"])
def test_an_id_that_leaves_the_wavs_folder_is_refused_with_its_line(tmp_path: Path, bad_id: str):
    (tmp_path / "metadata.csv").write_text(f"A1|ok|ok\nA2|fine|fine\n{bad_id}|out|out\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"metadata\.csv:3: id .* leaves the corpus's wavs/ folder"):
        read_corpus(tmp_path)
    (tmp_path / "metadata.csv").write_text("spk1/001|a folder inside wavs/ is fine|ok\n", encoding="utf-8")
    assert read_corpus(tmp_path)[0].wav_path == tmp_path / "wavs" / "spk1" / "001.wav"


@pytest.mark.parametrize("content", ["", "\n\n   \n"])
def test_empty_metadata_is_an_error_naming_the_file(tmp_path: Path, content: str):
    (tmp_path / "metadata.csv").write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        read_corpus(tmp_path)
    assert str(tmp_path / "metadata.csv") in str(info.value) and "empty" in str(info.value)


def test_missing_metadata_and_missing_path(tmp_path: Path):
    (tmp_path / "wavs").mkdir()
    with pytest.raises(CorpusError) as info:
        read_corpus(tmp_path)
    assert str(tmp_path) in str(info.value) and "metadata.csv" in str(info.value)
    with pytest.raises(CorpusError, match="no-such-corpus"):
        read_corpus(tmp_path / "no-such-corpus")


def test_non_utf8_metadata_is_a_corpus_error(tmp_path: Path):
    (tmp_path / "metadata.csv").write_bytes("A1|caf\u00e9|caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CorpusError, match="metadata.csv: not UTF-8"):
        read_corpus(tmp_path)


# --------------------------------------------------------------------------- checks


def test_check_clean_demo_corpus(demo_corpus: Path):
    report = check_corpus(demo_corpus)
    assert report.problems == [] and report.blocking == []
    assert report.utterances == 24 and len(report.usable) == 24
    expected = {p.stem: sf.info(str(p)).duration for p in (demo_corpus / "wavs").glob("*.wav")}
    assert report.durations == pytest.approx(expected)
    assert report.total_seconds == pytest.approx(sum(expected.values()))
    texts = "".join(u.text for u in report.usable)
    assert report.characters == Counter(texts)


@pytest.fixture()
def bad_corpus(demo_corpus: Path, tmp_path: Path) -> Path:
    """A corpus with one utterance of every class of problem (see LINES)."""
    root = copy_corpus(demo_corpus, tmp_path)
    wavs = root / "wavs"
    (wavs / "DEMO-0002.wav").unlink()
    (wavs / "DEMO-0003.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEthis is not audio at all")
    write_tone(wavs / "SHORT.wav", 0.1)
    write_tone(wavs / "LONG.wav", 12.5)
    write_tone(wavs / "RATE16K.wav", 1.0, rate=16_000)
    lines = [
        "DEMO-0001|A good sentence.|a good sentence.",  # 1 fine
        "DEMO-0002|Its audio is gone.|its audio is gone.",  # 2 missing audio
        "DEMO-0003|Its audio is corrupt.|its audio is corrupt.",  # 3 unreadable audio
        "DEMO-0004||",  # 4 empty text
        "DEMO-0005|Say \u65e5 please.|say \u65e5 please.",  # 5 unknown character
        "DEMO-0001|Declared twice.|declared twice.",  # 6 duplicate id
        "SHORT|Too short.|too short.",  # 7 too short
        "LONG|Too long.|too long.",  # 8 too long
        "RATE16K|Other rate.|other rate.",  # 9 sample-rate note only
        "DEMO-0006|\u65e5\u672c|\u65e5\u672c",  # 10 nothing known left
    ]
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_check_finds_every_class_of_problem_with_its_file(bad_corpus: Path):
    report = check_corpus(bad_corpus)
    metadata = bad_corpus / "metadata.csv"
    wavs = bad_corpus / "wavs"
    found = {(p.utterance, p.kind): p for p in report.problems}
    expected = {
        ("DEMO-0002", "missing audio"): (f"{metadata}:2", True),
        ("DEMO-0003", "unreadable audio"): (str(wavs / "DEMO-0003.wav"), True),
        ("DEMO-0004", "empty text"): (f"{metadata}:4", True),
        ("DEMO-0005", "unknown characters"): (f"{metadata}:5", True),
        ("DEMO-0001", "duplicate id"): (f"{metadata}:6", True),
        ("SHORT", "too short"): (str(wavs / "SHORT.wav"), True),
        ("LONG", "too long"): (str(wavs / "LONG.wav"), True),
        ("RATE16K", "sample rate"): (str(wavs / "RATE16K.wav"), False),
        ("DEMO-0006", "unknown characters"): (f"{metadata}:10", True),
        ("DEMO-0006", "empty text"): (f"{metadata}:10", True),
    }
    assert set(found) == set(expected)
    assert len(report.problems) == len(expected)
    for key, (where, blocking) in expected.items():
        problem = found[key]
        assert problem.where == where, key
        assert problem.blocking is blocking, key
        line = problem.line()
        assert line.startswith("error: " if blocking else "note: ") and where in line and key[0] in line
    assert str(wavs / "DEMO-0002.wav") in found[("DEMO-0002", "missing audio")].message
    assert f"{metadata}:1" in found[("DEMO-0001", "duplicate id")].message
    assert "U+65E5" in found[("DEMO-0005", "unknown characters")].message
    assert "0.10 s" in found[("SHORT", "too short")].message
    assert "12.50 s" in found[("LONG", "too long")].message
    assert "16000 Hz" in found[("RATE16K", "sample rate")].message
    # Only the clean line and the rate-mismatch line are usable; the rate one keeps its true duration.
    assert [(u.id, u.line) for u in report.usable] == [("DEMO-0001", 1), ("RATE16K", 9)]
    assert report.durations["RATE16K"] == pytest.approx(1.0)
    assert report.total_seconds == pytest.approx(report.durations["DEMO-0001"] + 1.0)
    assert report.utterances == 10
    assert len(report.blocking) == 9


def test_unknown_characters_become_notes_when_dropping(bad_corpus: Path):
    report = check_corpus(bad_corpus, drop_unknown_chars=True)
    unknown = [p for p in report.problems if p.kind == "unknown characters"]
    assert {p.utterance for p in unknown} == {"DEMO-0005", "DEMO-0006"}
    assert all(not p.blocking and "(dropped)" in p.message for p in unknown)
    # DEMO-0005 keeps speakable text and becomes usable; DEMO-0006 would be empty, so it stays out.
    assert [u.id for u in report.usable] == ["DEMO-0001", "DEMO-0005", "RATE16K"]
    assert any(p.utterance == "DEMO-0006" and p.kind == "empty text" and p.blocking for p in report.problems)


def test_check_duration_bounds_are_settings(demo_corpus: Path):
    durations = sorted(sf.info(str(p)).duration for p in (demo_corpus / "wavs").glob("*.wav"))
    cut = (durations[5] + durations[6]) / 2
    report = check_corpus(demo_corpus, min_seconds=cut)
    short = [p for p in report.problems if p.kind == "too short"]
    assert len(short) == 6 and all(p.where.endswith(".wav") and p.blocking for p in short)
    report = check_corpus(demo_corpus, max_seconds=cut)
    assert len([p for p in report.problems if p.kind == "too long"]) == 18
    assert len(report.usable) == 6


def test_check_filelist_with_flac_and_missing_file(tmp_path: Path):
    (tmp_path / "clips").mkdir()
    write_tone(tmp_path / "clips" / "a.wav", 1.0)
    sf.write(tmp_path / "clips" / "b.flac", np.zeros(SR // 2, dtype=np.float32), SR, format="FLAC")
    listing = tmp_path / "list.txt"
    listing.write_text("clips/a.wav|First.\nclips/b.flac|Second.\nclips/c.wav|Third.\n", encoding="utf-8")
    report = check_corpus(listing)
    assert [u.id for u in report.usable] == ["clips/a", "clips/b"]
    assert [(p.utterance, p.kind, p.where) for p in report.problems] == [("clips/c", "missing audio", f"{listing}:3")]
    assert "c.wav" in report.problems[0].message
    assert report.durations == pytest.approx({"clips/a": 1.0, "clips/b": 0.5})


def test_check_raises_only_when_unreadable(tmp_path: Path):
    with pytest.raises(CorpusError):
        check_corpus(tmp_path / "missing")


# --------------------------------------------------------------------------- feature cache


def demo_wavs(demo_corpus: Path, n: int) -> list[Path]:
    return sorted((demo_corpus / "wavs").glob("*.wav"))[:n]


def test_cache_reuses_without_recomputing(demo_corpus: Path, tmp_path: Path, monkeypatch):
    wav = demo_wavs(demo_corpus, 1)[0]
    cache = FeatureCache(tmp_path / "cache")
    first = cache.mel(wav)
    samples, _ = audio.load_audio(wav)
    torch.testing.assert_close(first, audio.mel_spectrogram(samples, SR), rtol=0, atol=0)
    assert first.shape == (80, 1 + samples.shape[0] // 256) and first.dtype == torch.float32
    assert (cache.hits, cache.misses) == (0, 1)

    def no_recompute(*args, **kwargs):
        raise AssertionError("a cache hit must not recompute")

    monkeypatch.setattr(audio, "mel_spectrogram", no_recompute)
    monkeypatch.setattr(audio, "load_audio", no_recompute)
    torch.testing.assert_close(cache.mel(wav), first, rtol=0, atol=0)
    assert (cache.hits, cache.misses) == (1, 1)
    # Another cache object on the same root (another run or trial) hits too.
    other = FeatureCache(tmp_path / "cache")
    torch.testing.assert_close(other.mel(str(wav)), first, rtol=0, atol=0)
    assert (other.hits, other.misses) == (1, 0)
    assert len(list(other.folder.rglob("*.npy"))) == 1


def test_cache_root_defaults_to_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SMART_TUNER_CACHE", str(tmp_path / "env-cache"))
    assert FeatureCache().folder.parent == tmp_path / "env-cache"
    monkeypatch.delenv("SMART_TUNER_CACHE")
    assert FeatureCache().folder.parent == Path.home() / ".cache" / "smart-tuner"


def test_changed_file_is_recomputed(demo_corpus: Path, tmp_path: Path):
    first_src, second_src = demo_wavs(demo_corpus, 2)
    wav = tmp_path / "clip.wav"
    shutil.copyfile(first_src, wav)
    os.utime(wav, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    cache = FeatureCache(tmp_path / "cache")
    before = cache.mel(wav)
    shutil.copyfile(second_src, wav)  # new content
    os.utime(wav, ns=(1_600_000_100_000_000_000, 1_600_000_100_000_000_000))
    after = cache.mel(wav)
    assert (cache.hits, cache.misses) == (0, 2)
    expected = FeatureCache(tmp_path / "fresh").mel(second_src)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)
    assert after.shape != before.shape or not torch.equal(after, before)
    # Only touching the file (same bytes, new mtime) also misses: the key never trusts a stale entry.
    os.utime(wav, ns=(1_600_000_200_000_000_000, 1_600_000_200_000_000_000))
    torch.testing.assert_close(cache.mel(wav), expected, rtol=0, atol=0)
    assert cache.misses == 3
    assert cache.mel(wav).shape == expected.shape and cache.hits == 1


def test_changed_setting_uses_another_folder(demo_corpus: Path, tmp_path: Path):
    wav = demo_wavs(demo_corpus, 1)[0]
    plain = FeatureCache(tmp_path / "cache")
    normalised = FeatureCache(tmp_path / "cache", peak_normalize=True)
    assert plain.folder != normalised.folder
    assert plain.folder.parent == normalised.folder.parent == tmp_path / "cache"
    a = plain.mel(wav)
    b = normalised.mel(wav)
    assert (normalised.hits, normalised.misses) == (0, 1)  # the plain entry is not reused
    samples, _ = audio.load_audio(wav)
    gain = 0.95 / float(samples.abs().max())
    assert abs(math.log(gain)) > 0.05
    loud = (a > math.log(1e-5) + 1) & (b > math.log(1e-5) + 1)
    assert loud.float().mean() > 0.5
    torch.testing.assert_close(b[loud] - a[loud], torch.full_like(a[loud], math.log(gain)), atol=1e-3, rtol=0)
    assert FeatureCache(tmp_path / "cache", peak_normalize=True).folder == normalised.folder


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "header-only"])
def test_corrupt_cache_entry_is_recomputed(demo_corpus: Path, tmp_path: Path, damage: str):
    wav = demo_wavs(demo_corpus, 1)[0]
    cache = FeatureCache(tmp_path / "cache")
    good = cache.mel(wav)
    entry = cache.path_for(wav)
    raw = entry.read_bytes()
    entry.write_bytes({"empty": b"", "truncated": raw[: len(raw) // 2], "garbage": b"\x00garbage" * 50,
                       "header-only": raw[:128]}[damage])
    again = cache.mel(wav)
    torch.testing.assert_close(again, good, rtol=0, atol=0)
    assert (cache.hits, cache.misses) == (0, 2)
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), good.numpy())  # repaired on disk
    assert cache.mel(wav) is not None and cache.hits == 1


def test_cache_entry_appears_only_when_whole(demo_corpus: Path, tmp_path: Path, monkeypatch):
    """While an entry is being written, a reader finds no file (or the old one), never a partial new one."""
    import io

    wav = demo_wavs(demo_corpus, 1)[0]
    cache = FeatureCache(tmp_path / "cache")
    entry = cache.path_for(wav)
    real_save = np.save
    observed = []

    def save_in_two_halves(file, array, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(buffer, array, *args, **kwargs)
        raw = buffer.getvalue()
        file.write(raw[: len(raw) // 2])
        file.flush()
        observed.append(entry.read_bytes() if entry.exists() else None)  # what a reader would get now
        file.write(raw[len(raw) // 2:])

    monkeypatch.setattr(np, "save", save_in_two_halves)
    first = cache.mel(wav)
    assert observed == [None]
    old = b"OLD damaged entry " * 4
    entry.write_bytes(old)  # a damaged entry is replaced the same way: old bytes until the new file is whole
    again = cache.mel(wav)
    assert observed == [None, old]
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    monkeypatch.undo()
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), first.numpy())
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temp file left behind


WORKER = r"""
import json, sys, threading, time
from pathlib import Path
import numpy as np
from trainer.data.dataset import FeatureCache

root, start_flag, out, order, *wavs = sys.argv[1:]
if order == "reversed":
    wavs = wavs[::-1]
cache = FeatureCache(root)
problems, reads = [], [0]
done = threading.Event()

def poll():
    # Read every finished-looking entry again and again while the writers write.
    while True:
        finished = done.is_set()  # one last full pass after the writes, so every entry is read at least once
        for entry in cache.folder.glob("*/*.npy"):
            try:
                array = np.load(entry, allow_pickle=False)
            except FileNotFoundError:
                continue
            except Exception as err:
                problems.append(f"{entry.name}: {type(err).__name__}: {err}")
                continue
            reads[0] += 1
            if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != 80 or not np.isfinite(array).all():
                problems.append(f"{entry.name}: bad array {array.dtype} {array.shape}")
        if finished:
            break

Path(out + ".ready").touch()
while not Path(start_flag).exists():
    time.sleep(0.002)
poller = threading.Thread(target=poll, daemon=True)
poller.start()
mels = {Path(w).name: cache.mel(w).numpy() for w in wavs}
done.set()
poller.join()
np.savez(out, **mels)
Path(out + ".json").write_text(json.dumps({"problems": problems, "reads": reads[0], "hits": cache.hits,
                                           "misses": cache.misses}))
"""


def test_concurrent_processes_fill_one_cache_safely(demo_corpus: Path, tmp_path: Path):
    wavs = demo_wavs(demo_corpus, 12)
    root = tmp_path / "shared-cache"
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    start = tmp_path / "start"
    outs = [tmp_path / f"worker{i}.npz" for i in range(2)]
    orders = ["forward", "reversed"]
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(start), str(out), order,
                               *map(str, wavs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for out, order in zip(outs, orders, strict=True)]
    try:
        deadline = time.monotonic() + 90
        while not all(Path(f"{out}.ready").exists() for out in outs):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.02)
        start.touch()  # all workers begin at once
        for proc in procs:
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err.decode()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    stats = [json.loads(Path(f"{out}.json").read_text()) for out in outs]
    assert [s["problems"] for s in stats] == [[], []]  # no reader ever saw a torn entry
    assert all(s["reads"] >= len(wavs) for s in stats)
    assert all(s["hits"] + s["misses"] == len(wavs) for s in stats)
    assert sum(s["misses"] for s in stats) >= len(wavs)
    results = [np.load(out) for out in outs]
    cache = FeatureCache(root)
    for wav in wavs:
        reference = results[0][wav.name]
        for result in results[1:]:
            np.testing.assert_array_equal(result[wav.name], reference)
        np.testing.assert_array_equal(cache.mel(wav).numpy(), reference)
    assert (cache.hits, cache.misses) == (len(wavs), 0)
    assert len(list(cache.folder.rglob("*.npy"))) == len(wavs)
    assert [p.name for p in cache.folder.rglob("*") if p.is_file() and not p.name.endswith(".npy")] == []


# --------------------------------------------------------------------------- dataset


def test_dataset_unknown_character_error_and_drop(demo_corpus: Path, tmp_path: Path):
    items = read_corpus(demo_corpus)[:3]
    items[1] = dataclasses.replace(items[1], text=items[1].text + " \u00a7 \u65e5")
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(UnknownCharacterError) as info:
        TTSDataset(items, cache, on_unknown="error")
    assert info.value.utterance_id == items[1].id and items[1].id in str(info.value)
    assert info.value.character == "\u00a7"
    dataset = TTSDataset(items, cache, on_unknown="drop")
    assert len(dataset) == 3
    original = read_corpus(demo_corpus)[1].text
    assert dataset[1].text_ids.tolist() == text_to_ids(original)
    assert dataset[1].text_ids.dtype == torch.long
    assert [e.id for e in dataset.examples] == [u.id for u in items]
    for example, item in zip(dataset.examples, items, strict=True):
        torch.testing.assert_close(example.mel, cache.mel(item.wav_path), rtol=0, atol=0)
    assert dataset.frame_lengths() == [e.mel.shape[-1] for e in dataset.examples]
    frames = sum(dataset.frame_lengths())
    tokens = sum(len(e.text_ids) for e in dataset.examples)
    assert dataset.frames_per_character() == pytest.approx(frames / tokens)


# --------------------------------------------------------------------------- batches


def padding_waste(batches: list[list[int]], lengths: list[int]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_bucketed_batches_cover_each_index_once_and_are_deterministic():
    rng = random.Random(3)
    lengths = [rng.randint(50, 800) for _ in range(203)]
    batches = bucketed_batches(lengths, 8, seed=11, epoch=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(203))
    assert all(1 <= len(b) <= 8 for b in batches)
    assert sum(len(b) < 8 for b in batches) <= math.ceil(203 / 64)  # only bucket ends are short
    assert bucketed_batches(lengths, 8, seed=11, epoch=0) == batches
    assert bucketed_batches(lengths, 8, seed=11, epoch=1) != batches
    assert bucketed_batches(lengths, 8, seed=12, epoch=0) != batches
    for epoch in range(1, 4):
        again = [i for b in bucketed_batches(lengths, 8, seed=11, epoch=epoch) for i in b]
        assert sorted(again) == list(range(203))


def test_bucketed_batches_are_length_homogeneous():
    rng = random.Random(5)
    lengths = [rng.randint(50, 800) for _ in range(400)]
    bucketed = bucketed_batches(lengths, 12, seed=0, epoch=0)
    random_waste = []
    for trial in range(5):
        order = list(range(400))
        random.Random(trial).shuffle(order)
        random_waste.append(padding_waste([order[i:i + 12] for i in range(0, 400, 12)], lengths))
    assert padding_waste(bucketed, lengths) < 0.4 * min(random_waste)
    # Within a batch, lengths are close: the spread is far below the corpus's range.
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in bucketed]
    assert statistics_mean(spreads) < 0.25 * (max(lengths) - min(lengths))
    # Batches still come in a shuffled order, not sorted by length.
    means = [sum(lengths[i] for i in b) / len(b) for b in bucketed]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def statistics_mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_bucketed_batches_without_shuffle_and_empty():
    lengths = [5, 1, 4, 2, 3]
    assert bucketed_batches(lengths, 2, seed=0, epoch=0, shuffle=False) == [[1, 3], [4, 2], [0]]
    assert bucketed_batches(lengths, 2, seed=0, epoch=0, shuffle=False) == \
        bucketed_batches(lengths, 2, seed=9, epoch=4, shuffle=False)
    assert bucketed_batches([], 4, seed=0, epoch=0) == []


def make_examples(mel_lens: list[int], text_lens: list[int]) -> list[Example]:
    gen = torch.Generator().manual_seed(0)
    return [Example(f"u{i}", torch.randint(1, 60, (n,), generator=gen), torch.randn(80, f, generator=gen))
            for i, (f, n) in enumerate(zip(mel_lens, text_lens, strict=True))]


@pytest.mark.parametrize("r", [1, 2, 3])
def test_collate_padding_lengths_and_gate(r: int):
    mel_lens = [7, 10, 5, 9]
    text_lens = [3, 6, 1, 4]
    examples = make_examples(mel_lens, text_lens)
    batch = collate(examples, reduction_factor=r)
    out_lens = [math.ceil(f / r) for f in mel_lens]
    steps = max(out_lens)
    assert batch.ids == ["u0", "u1", "u2", "u3"]
    assert batch.text.shape == (4, 6) and batch.text.dtype == torch.long
    assert batch.text_lens.tolist() == text_lens
    assert batch.mel_lens.tolist() == mel_lens
    assert batch.out_lens.tolist() == out_lens
    assert batch.mels.shape == (4, 80, steps * r)
    assert batch.mels.shape[2] % r == 0 and batch.mels.shape[2] >= max(mel_lens)
    assert batch.gate_targets.shape == (4, steps)
    floor = math.log(1e-5)
    for row, (example, f, n, s) in enumerate(zip(examples, mel_lens, text_lens, out_lens, strict=True)):
        assert torch.equal(batch.text[row, :n], example.text_ids)
        assert (batch.text[row, n:] == 0).all()
        assert torch.equal(batch.mels[row, :, :f], example.mel)
        assert torch.allclose(batch.mels[row, :, f:], torch.tensor(floor))
        expected_gate = torch.zeros(steps)
        expected_gate[s - 1] = 1.0
        assert torch.equal(batch.gate_targets[row], expected_gate)
    # The gate fires at the step that holds the last real frame.
    for row, f in enumerate(mel_lens):
        last_step = int(batch.gate_targets[row].argmax())
        assert last_step * r <= f - 1 < (last_step + 1) * r
    moved = batch.to("cpu")
    assert moved.ids == batch.ids and torch.equal(moved.mels, batch.mels)
    assert torch.equal(moved.out_lens, batch.out_lens) and torch.equal(moved.gate_targets, batch.gate_targets)


def test_collate_single_example_exact_multiple():
    batch = collate(make_examples([6], [2]), reduction_factor=3)
    assert batch.out_lens.tolist() == [2] and batch.mels.shape == (1, 80, 6)
    assert batch.gate_targets.tolist() == [[0.0, 1.0]]


# --------------------------------------------------------------------------- split


def fake_items(n: int) -> list[Utterance]:
    return [Utterance(f"LJ{i:04d}", f"text {i}", Path(f"wavs/LJ{i:04d}.wav"), Path("metadata.csv"), i + 1)
            for i in range(n)]


def test_split_is_deterministic_and_independent_of_file_order():
    items = fake_items(40)
    train, val = split_train_val(items, 6)
    assert len(val) == 6 and len(train) == 34
    assert {u.id for u in train} | {u.id for u in val} == {u.id for u in items}
    assert not {u.id for u in train} & {u.id for u in val}
    assert [u.id for u in train] == [u.id for u in items if u not in val]  # file order kept
    assert split_train_val(items, 6) == (train, val)
    for seed in range(3):
        shuffled = items[:]
        random.Random(seed).shuffle(shuffled)
        train2, val2 = split_train_val(shuffled, 6)
        assert {u.id for u in val2} == {u.id for u in val}
        assert [u.id for u in train2] == [u.id for u in shuffled if u.id not in {v.id for v in val}]
    # Not simply the first or last lines of the file.
    assert [u.id for u in val] != [u.id for u in items[:6]] and [u.id for u in val] != [u.id for u in items[-6:]]
    # Growing the validation set only adds utterances.
    assert {u.id for u in val} < {u.id for u in split_train_val(items, 9)[1]}


def test_split_edges():
    items = fake_items(5)
    train, val = split_train_val(items, 10)
    assert len(train) == 1 and len(val) == 4  # something is always left to train on
    assert split_train_val(items, 0) == (items, [])
    assert split_train_val([], 3) == ([], [])
    with pytest.raises(ValueError, match="val_size"):
        split_train_val(items, -1)

