"""`trainer check-data DATA`: summary, problems and exit codes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from trainer.cli import main

TRAINER = Path(sys.executable).with_name("trainer")


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check-data", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_clean_corpus_prints_summary_and_exits_0(demo_corpus: Path, capsys):
    code, out, err = run(capsys, str(demo_corpus))
    assert code == 0 and err == ""
    durations = sorted(sf.info(str(p)).duration for p in (demo_corpus / "wavs").glob("*.wav"))
    lines = out.splitlines()
    assert lines[0] == f"corpus: {demo_corpus}"
    assert "utterances: 24 (24 usable)" in lines
    assert (f"total duration: {sum(durations) / 60:.1f} min; per clip min {durations[0]:.2f} s, "
            f"median {float(np.median(durations)):.2f} s, max {durations[-1]:.2f} s") in lines
    texts = [line.split("|")[2] for line in (demo_corpus / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    characters = sorted(set("".join(texts)))
    assert f"characters seen ({len(characters)}): {''.join(characters)!r}" in lines
    assert lines[-1] == "problems: 0 blocking, 0 notes"


def make_bad_corpus(demo_corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "bad"
    shutil.copytree(demo_corpus, root)
    (root / "wavs" / "DEMO-0002.wav").unlink()
    (root / "wavs" / "DEMO-0003.wav").write_bytes(b"not a wav file")
    t = np.arange(16_000) / 16_000
    sf.write(root / "wavs" / "DEMO-0004.wav", (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16_000)
    (root / "metadata.csv").write_text(
        "DEMO-0001|Fine.|fine.\n"
        "DEMO-0002|Gone.|gone.\n"
        "DEMO-0003|Broken.|broken.\n"
        "DEMO-0004|Other rate.|other rate.\n"
        "DEMO-0005|Price in \u20ac.|price in \u20ac.\n",
        encoding="utf-8")
    return root


def test_blocking_problems_are_listed_with_files_and_exit_1(demo_corpus: Path, tmp_path: Path, capsys):
    root = make_bad_corpus(demo_corpus, tmp_path)
    code, out, err = run(capsys, str(root))
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert "utterances: 5 (2 usable)" in lines
    assert "problems: 3 blocking, 1 notes" in lines
    problems = [line.strip() for line in lines if line.startswith("  ")]
    metadata = root / "metadata.csv"
    assert len(problems) == 4
    assert problems[0].startswith(f"error: {metadata}:2: DEMO-0002: missing audio:")
    assert str(root / "wavs" / "DEMO-0002.wav") in problems[0]
    assert problems[1].startswith(f"error: {root / 'wavs' / 'DEMO-0003.wav'}: DEMO-0003: unreadable audio:")
    assert problems[2].startswith(f"note: {root / 'wavs' / 'DEMO-0004.wav'}: DEMO-0004: sample rate:")
    assert problems[3].startswith(f"error: {metadata}:5: DEMO-0005: unknown characters:") and "U+20AC" in problems[3]


def test_drop_unknown_chars_and_duration_flags(demo_corpus: Path, tmp_path: Path, capsys):
    root = tmp_path / "c"
    shutil.copytree(demo_corpus, root)
    metadata = root / "metadata.csv"
    rows = metadata.read_text(encoding="utf-8").splitlines()
    rows[0] = rows[0] + " \u20ac"
    metadata.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, _ = run(capsys, str(root))
    assert code == 1 and "problems: 1 blocking, 0 notes" in out
    code, out, _ = run(capsys, str(root), "--drop-unknown-chars")
    assert code == 0 and "problems: 0 blocking, 1 notes" in out and "(dropped)" in out
    code, out, _ = run(capsys, str(root), "--drop-unknown-chars", "--max-seconds", "2.0")
    assert code == 1 and "too long" in out


def test_filelist_input(demo_corpus: Path, tmp_path: Path, capsys):
    listing = tmp_path / "list.txt"
    wavs = sorted((demo_corpus / "wavs").glob("*.wav"))[:3]
    listing.write_text("".join(f"{w}|Sentence number {i}.\n" for i, w in enumerate(wavs)), encoding="utf-8")
    code, out, _ = run(capsys, str(listing))
    assert code == 0 and "utterances: 3 (3 usable)" in out


def test_malformed_metadata_is_one_error_line_exit_2(tmp_path: Path, capsys):
    (tmp_path / "metadata.csv").write_text("A1|ok|ok\nno separator here\n", encoding="utf-8")
    code, out, err = run(capsys, str(tmp_path))
    assert code == 2 and out == ""
    assert err.splitlines() == [err.strip()] and f"{tmp_path / 'metadata.csv'}:2" in err


def test_missing_folder_console_script_exits_2_without_traceback(tmp_path: Path):
    missing = tmp_path / "no-such-corpus"
    command = [str(TRAINER)] if TRAINER.exists() else [sys.executable, "-m", "trainer.cli"]
    done = subprocess.run([*command, "check-data", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("trainer: error:") and str(missing) in done.stderr
