"""Bad input, case by case: one line naming the problem, exit 2 (1 for a data report), no traceback,
and nothing written — no tuner home (study storage, MLflow store, runs), no storage folder, no
feature cache, no change to the corpus.

Each case drives the real command-line entry points (``tuner.cli.main`` and ``trainer.cli.main``,
what the ``tuner`` and ``trainer`` console scripts call) in-process; a few run the installed console
scripts themselves to show the same in a fresh process. The local PostgreSQL trusts every login,
so a wrong password cannot be refused here: an unknown user (refused the same way, before any
password check) and an unknown database stand in for it, and an unreachable port for a down server.
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
GOOD_PARAMS = "params:\n  learning_rate: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}\n"


@dataclass
class Env:
    """Where a case runs: its folder, the (good) corpus, and the paths that must stay unwritten."""

    root: Path
    corpus: Path  # a private copy of the short corpus; cases may spoil it

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def space(self, body: str | bytes, name: str = "bad.yaml") -> str:
        path = self.root / name
        if isinstance(body, bytes):
            path.write_bytes(body)
        else:
            path.write_text(body, encoding="utf-8")
        return str(path)

    def run_study(self, *args: str, space: str | None = None) -> list[str]:
        """Return `tuner run-study` arguments with a storage and home whose creation the test watches."""
        return ["run-study", "--space", space or self.space("preset: tiny\n" + GOOD_PARAMS), "--data",
                str(self.corpus), "--home", str(self.home), "--storage", f"sqlite:///{self.store}/optuna.db", *args]

    def metadata(self) -> Path:
        return self.corpus / "metadata.csv"

    def first_wav(self) -> Path:
        return sorted((self.corpus / "wavs").glob("*.wav"))[0]


@dataclass(frozen=True)
class Case:
    """One malformed input: ``make(env)`` spoils what it needs and returns (program, argv)."""

    id: str
    make: Callable[[Env], tuple[str, list[str]]]
    needle: str
    code: int = 2


def space_case(case_id: str, body: str | bytes, needle: str) -> Case:
    return Case(case_id, lambda e: ("tuner", e.run_study(space=e.space(body))), needle)


def _lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _spoil_metadata(env: Env, transform: Callable[[list[str]], list[str]]) -> None:
    env.metadata().write_text("\n".join(transform(_lines_of(env.metadata()))) + "\n", encoding="utf-8")


def _corrupt_audio(env: Env) -> Path:
    env.first_wav().write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    return env.corpus


def _missing_audio(env: Env) -> Path:
    env.first_wav().unlink()
    return env.corpus


def _unknown_characters(env: Env) -> Path:
    _spoil_metadata(env, lambda lines: [lines[0].split("|")[0] + "|Snow \u2603 falls.|Snow \u2603 falls."] + lines[1:])
    return env.corpus


def _empty_metadata(env: Env) -> Path:
    env.metadata().write_text("", encoding="utf-8")
    return env.corpus


def _empty_text(env: Env) -> Path:
    _spoil_metadata(env, lambda lines: [lines[0].split("|")[0] + "||"] + lines[1:])
    return env.corpus


def _no_separator(env: Env) -> Path:
    _spoil_metadata(env, lambda lines: lines[:3] + ["just some words without an id"] + lines[3:])
    return env.corpus


def _no_metadata(env: Env) -> Path:
    env.metadata().unlink()
    return env.corpus


def _duplicate_id(env: Env) -> Path:
    _spoil_metadata(env, lambda lines: lines + [lines[0]])
    return env.corpus


def _not_utf8(env: Env) -> Path:
    env.metadata().write_bytes(env.metadata().read_bytes() + b"x|caf\xe9|caf\xe9\n")
    return env.corpus


def _too_short(env: Env) -> Path:
    import numpy as np
    import soundfile as sf

    sf.write(str(env.first_wav()), np.zeros(1000, dtype=np.float32), 22050)  # 0.05 s
    return env.corpus


def _filelist_of_missing_files(env: Env) -> Path:
    filelist = env.root / "list.txt"
    filelist.write_text("nowhere/a.wav|Hello there.\nnowhere/b.wav|Good bye.\n", encoding="utf-8")
    return filelist


def _too_few(env: Env) -> Path:
    _spoil_metadata(env, lambda lines: lines[:3])
    return env.corpus


# (id, spoil, needle, exit code of `trainer check-data`: 1 for a data report, 2 when unreadable)
CORPORA = [
    ("corrupt-audio", _corrupt_audio, "unreadable audio", 1),
    ("missing-audio", _missing_audio, "missing audio", 1),
    ("unknown-characters", _unknown_characters, "unknown characters", 1),
    ("empty-metadata", _empty_metadata, "empty (no utterances)", 2),
    ("empty-text", _empty_text, "empty text", 1),
    ("no-separator", _no_separator, "expected 'id|text|normalized text'", 2),
    ("no-metadata", _no_metadata, "not a corpus (no metadata.csv", 2),
    ("duplicate-id", _duplicate_id, "duplicate id", 1),
    ("metadata-not-utf8", _not_utf8, "not UTF-8 text", 2),
    ("too-short-clip", _too_short, "too short", 1),
    ("filelist-missing-files", _filelist_of_missing_files, "missing audio", 1),
]

CASES = [
    # --- search-space and study files
    space_case("yaml-syntax", "params:\n  ga_weight: {low: 1.0, high: 2.0\n", "invalid YAML"),
    space_case("inverted-bounds", "params:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-5}\n",
               "params.learning_rate.high"),
    space_case("bound-not-a-number", "params:\n  ga_weight: {low: abc, high: 2.0}\n", "params.ga_weight.low"),
    space_case("bound-is-a-bool", "params:\n  ga_weight: {low: true, high: 2.0}\n", "params.ga_weight.low"),
    space_case("int-bound-fractional", "params:\n  batch_size: {type: int, low: 8.5, high: 16}\n",
               "must be an integer"),
    space_case("log-scale-from-zero", "params:\n  learning_rate: {low: 0.0, high: 1.0e-3, log: true}\n", "log scale"),
    space_case("default-outside", "params:\n  ga_weight: {low: 1.0, high: 2.0, default: 3.0}\n", "outside"),
    space_case("unknown-param-key", "params:\n  ga_weight: {low: 1.0, high: 2.0, spread: 2}\n", "unknown key"),
    space_case("unknown-trainer-key", "params:\n  warp_factor: {low: 1.0, high: 2.0}\n", "not a TrainConfig key"),
    space_case("unknown-top-key", "studdy:\n  name: x\n" + GOOD_PARAMS, "studdy"),
    space_case("unknown-study-key", "study:\n  n_trails: 3\n" + GOOD_PARAMS, "n_trails"),
    space_case("empty-choices", "params:\n  mel_loss: {type: categorical, choices: []}\n", "must be a non-empty list"),
    space_case("n-trials-not-a-number", "study:\n  n_trials: many\n" + GOOD_PARAMS, "study.n_trials"),
    space_case("n-trials-negative", "study:\n  n_trials: -4\n" + GOOD_PARAMS, "study.n_trials"),
    space_case("unknown-sampler", "study:\n  sampler: {name: annealing}\n" + GOOD_PARAMS, "unknown sampler"),
    space_case("unknown-objective", "study:\n  objective: bleu\n" + GOOD_PARAMS, "unknown metric 'bleu'"),
    space_case("gate-without-bound", "study:\n  gates: [{metric: tf_diagonality, after_step: 10}]\n" + GOOD_PARAMS,
               "needs 'min' or 'max'"),
    space_case("fixed-out-of-range", "fixed:\n  tf_floor: 1.5\n" + GOOD_PARAMS, "fixed.tf_floor"),
    space_case("duplicate-key", "study:\n  objective: val_total\n  objective: quality_score\n" + GOOD_PARAMS,
               "duplicate key"),
    space_case("unknown-preset", "preset: huge\n" + GOOD_PARAMS, "huge"),
    space_case("not-a-mapping", "- learning_rate\n- batch_size\n", "mapping"),
    space_case("empty-file", "", "bad.yaml"),
    space_case("space-not-utf8", b"params:\n  ga_weight: {low: 1.0, high: 2.0}  # \xff\xfe\n", "bad.yaml"),
    Case("unknown-space-name", lambda e: ("tuner", e.run_study(space="no-such-space")),
         "search-space file not found"),
    Case("space-is-a-folder", lambda e: ("tuner", e.run_study(space=str(e.root))), "cannot read (Is a directory)"),
    Case("check-space-inverted", lambda e: ("tuner", ["check-space", e.space(
        "params:\n  ga_weight: {low: 5.0, high: 1.0}\n")]), "params.ga_weight.high"),
    # Absurd bounds: what the trainer would refuse is refused when the space is checked.
    Case("check-space-batch-of-1e29", lambda e: ("tuner", ["check-space", e.space(
        "params:\n  batch_size: {type: int, low: 8, high: 100000000000000000000000000000}\n")]),
         "key 'batch_size' must be at most 4096"),
    Case("check-space-lr-of-1e300", lambda e: ("tuner", ["check-space", e.space(
        "params:\n  learning_rate: {type: float, low: 1.0e-4, high: 1.0e+300, log: true}\n")]),
         "key 'learning_rate' must be at most 1"),
    Case("check-space-1e14-steps", lambda e: ("tuner", ["check-space", e.space(
        "study:\n  max_steps: 100000000000000\n" + GOOD_PARAMS)]), "max_steps"),
    # --- corpora, through the tuner (exit 2) and through `trainer check-data` (the data report)
    *[Case(f"run-study-{cid}", lambda e, f=spoil: ("tuner", ["run-study", "--space", e.space(
        "preset: tiny\n" + GOOD_PARAMS), "--data", str(f(e)), "--home", str(e.home), "--storage",
        f"sqlite:///{e.store}/optuna.db"]), needle) for cid, spoil, needle, _ in CORPORA],
    *[Case(f"check-data-{cid}", lambda e, f=spoil: ("trainer", ["check-data", str(f(e))]), needle, code)
      for cid, spoil, needle, code in CORPORA],
    Case("run-study-too-few-utterances", lambda e: ("tuner", ["run-study", "--space", e.space(
        "preset: tiny\n" + GOOD_PARAMS), "--data", str(_too_few(e)), "--home", str(e.home)]),
         "not enough for a validation set"),
    Case("missing-data-folder", lambda e: ("tuner", e.run_study()[:3] + ["--data", str(e.root / "nope"),
                                                                           "--home", str(e.home)]),
         "corpus not found"),
    Case("train-missing-data-folder", lambda e: ("trainer", ["train", "--data", str(e.root / "nope"), "--out",
                                                             str(e.home / "run"), "--preset", "tiny"]),
         "no such corpus folder"),
    # --- command-line arguments
    Case("storage-unreachable", lambda e: ("tuner", e.run_study()[:-2] + [
        "--storage", "postgresql://alice:s3cr3t@127.0.0.1:1/studies", "--no-mlflow"]),
         "cannot reach the database server at 127.0.0.1:1"),
    Case("storage-bad-port", lambda e: ("tuner", e.run_study()[:-2] + ["--storage", "postgresql://u@db:port/x"]),
         "not a valid database URL"),
    Case("storage-unknown-scheme", lambda e: ("tuner", e.run_study()[:-2] + ["--storage", "redis://localhost"]),
         "expected sqlite:///PATH, postgresql://USER@HOST/DB or journal:///PATH"),
    Case("storage-journal-without-path", lambda e: ("tuner", e.run_study()[:-2] + ["--storage", "journal://"]),
         "expected journal:///PATH/TO/FILE.log"),
    Case("storage-in-memory", lambda e: ("tuner", e.run_study()[:-2] + ["--storage", "sqlite:///:memory:"]),
         "in-memory SQLite"),
    Case("mlflow-shares-optuna-db", lambda e: ("tuner", e.run_study("--storage", f"sqlite:///{e.store}/one.db")),
         "alembic_version"),
    Case("mlflow-unknown-scheme", lambda e: ("tuner", e.run_study()), "MLflow cannot track to a bogus:// URI"),
    Case("trials-zero", lambda e: ("tuner", e.run_study("--trials", "0")), "--trials must be >= 1"),
    Case("trials-not-a-number", lambda e: ("tuner", e.run_study("--trials", "lots")), "invalid int value"),
    Case("max-steps-negative", lambda e: ("tuner", e.run_study("--max-steps", "-3")), "--max-steps must be >= 1"),
    Case("timeout-zero", lambda e: ("tuner", e.run_study("--timeout", "0")), "--timeout must be a positive"),
    Case("trial-timeout-nan", lambda e: ("tuner", e.run_study("--trial-timeout", "nan")), "--trial-timeout"),
    Case("gpus-malformed", lambda e: ("tuner", e.run_study("--gpus", "a,b")), "expected GPU numbers"),
    Case("gpus-twice", lambda e: ("tuner", e.run_study("--gpus", "0,0")), "listed twice"),
    Case("unknown-option", lambda e: ("tuner", e.run_study("--turbo")), "unrecognized arguments: --turbo"),
    Case("missing-space-option", lambda e: ("tuner", ["run-study", "--data", str(e.corpus)]),
         "the following arguments are required: --space"),
    Case("warm-start-missing", lambda e: ("tuner", ["run-study", "--space", "default", "--data", str(e.corpus),
                                                    "--warm-start", str(e.root / "base.pt"), "--home", str(e.home)]),
         "base checkpoint not found"),
    Case("warm-start-corrupt", lambda e: ("tuner", ["run-study", "--space", "default", "--data", str(e.corpus),
                                                    "--warm-start", e.space("garbage", "base.pt"),
                                                    "--home", str(e.home)]), "not a readable checkpoint"),
    Case("fine-tuning-without-base", lambda e: ("tuner", ["run-study", "--space", "default", "--data",
                                                          str(e.corpus), "--home", str(e.home)]),
         "fine-tuning space"),
    Case("status-without-storage", lambda e: ("tuner", ["status", "--home", str(e.home)]), "no such database file"),
    Case("best-without-storage", lambda e: ("tuner", ["best", "--home", str(e.home), "--export", str(e.home / "x")]),
         "point elsewhere with --home DIR"),
    Case("train-set-unknown-key", lambda e: ("trainer", ["train", str(e.corpus), "--out", str(e.home / "run"),
                                                         "--set", "warp_factor=9"]), "unknown key 'warp_factor'"),
    Case("train-set-wrong-type", lambda e: ("trainer", ["train", "--data", str(e.corpus), "--out",
                                                        str(e.home / "run"), "--set", "batch_size=big"]),
         "key 'batch_size' must be int"),
    Case("train-two-corpora", lambda e: ("trainer", ["train", str(e.corpus), "--data", str(e.root / "other"),
                                                     "--out", str(e.home / "run")]), "two corpora given"),
]

POSTGRES_CASES = [
    # The local server trusts every login, so no password can be wrong here: an unknown user is
    # refused at the same point of the connection, and an unknown database after it.
    Case("storage-unknown-user", lambda e: ("tuner", e.run_study()[:-2] + [
        "--storage", "postgresql://nobody_st:pw-9911@127.0.0.1:5432/test", "--no-mlflow"]),
         "login refused: no user 'nobody_st'"),
    Case("storage-unknown-database", lambda e: ("tuner", e.run_study()[:-2] + [
        "--storage", "postgresql://postgres:pw-9911@127.0.0.1:5432/no_such_db_st", "--no-mlflow"]),
         "database 'no_such_db_st' does not exist"),
]


def invoke(program: str, argv: list[str]) -> int:
    """Run the `tuner` or `trainer` entry point with ``argv``; return its exit code."""
    if program == "tuner":
        from tuner.cli import main
    else:
        from trainer.cli import main
    try:
        return main(argv)
    except SystemExit as stop:  # argparse's errors
        return int(stop.code)


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*")}


@pytest.fixture()
def env(tmp_path: Path, short_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    corpus = tmp_path / "corpus"
    shutil.copytree(short_corpus, corpus)
    made = Env(tmp_path, corpus)
    monkeypatch.setenv("SMART_TUNER_CACHE", str(made.cache))
    monkeypatch.delenv("SMART_TUNER_HOME", raising=False)
    monkeypatch.delenv("SMART_TUNER_STORAGE", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.delenv("SMART_TUNER_FAULT", raising=False)
    monkeypatch.chdir(tmp_path)  # the default home ./studies would land here
    return made


def check_rejected(case: Case, env: Env, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    if case.id == "mlflow-shares-optuna-db":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{env.store}/one.db")
    elif case.id == "mlflow-unknown-scheme":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://user:secret@host/x")
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    program, argv = case.make(env)
    corpus_before = _snapshot(env.corpus)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = invoke(program, argv)
    captured = capsys.readouterr()
    stdout, stderr = out.getvalue() + captured.out, err.getvalue() + captured.err
    assert code == case.code, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    if case.code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and re.match(rf"{program}( [a-z-]+)?: error: ", lines[0]), stderr
        assert case.needle in lines[0], lines[0]
    else:  # the data report: every problem on its own line, the blocking one among them
        assert any(line.strip().startswith("error: ") and case.needle in line for line in stdout.splitlines()), stdout
    # Nothing written: no home, no storage folder, no feature cache, no default ./studies, corpus as it was.
    for path in (env.home, env.store, env.cache, env.root / "studies"):
        assert not path.exists(), path
    assert _snapshot(env.corpus) == corpus_before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, env: Env, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    check_rejected(case, env, capsys, monkeypatch)


@pytest.mark.postgres
@pytest.mark.parametrize("case", POSTGRES_CASES, ids=[c.id for c in POSTGRES_CASES])
def test_bad_postgres_login(case: Case, env: Env, capsys, monkeypatch: pytest.MonkeyPatch,
                            postgres_server: str) -> None:
    check_rejected(case, env, capsys, monkeypatch)
    assert "pw-9911" not in capsys.readouterr().err


def test_suite_is_large_enough() -> None:
    assert len(CASES) + len(POSTGRES_CASES) >= 30


@pytest.mark.parametrize(("program", "args", "needle"), [
    ("tuner", ["run-study", "--space", "no-such-space"], "search-space file not found"),
    ("tuner", ["run-study", "--space", "scratch", "--data", "no-such-folder"], "corpus not found"),
    ("tuner", ["status", "--storage", "postgresql://alice:s3cr3t@127.0.0.1:1/studies"], "cannot reach"),
    ("trainer", ["check-data", "no-such-folder"], "no such corpus folder"),
])
def test_console_scripts_answer_in_one_line(tmp_path: Path, program: str, args: list[str], needle: str) -> None:
    # The installed console scripts in a fresh process, in an empty folder that must stay empty.
    result = subprocess.run([str(BIN / program), *args], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SMART_TUNER_CACHE":
                                 str(tmp_path / "cache")})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "s3cr3t" not in result.stderr
    assert list(tmp_path.iterdir()) == []
