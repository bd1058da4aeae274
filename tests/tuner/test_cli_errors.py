"""Bad commands end with one line on stderr, exit 2, and nothing written to any storage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tuner.cli import main


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("tuner: error: "), lines[0]
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_malformed_space_is_rejected_before_anything_is_written(tmp_path: Path, capsys, short_corpus: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("study:\n  name: x\nparams:\n  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-5}\n")
    home, db = tmp_path / "home", tmp_path / "store" / "optuna.db"
    code = main(["run-study", "--space", str(bad), "--data", str(short_corpus), "--home", str(home),
                 "--storage", f"sqlite:///{db}"])
    assert code == 2
    line = _one_error_line(capsys)
    assert f"{bad}:4: params.learning_rate.high" in line
    assert not home.exists() and not db.parent.exists()


def test_fine_tuning_space_without_base_checkpoint_is_refused(tmp_path: Path, capsys, short_corpus: Path) -> None:
    home = tmp_path / "home"
    code = main(["run-study", "--space", "default.yaml", "--data", str(short_corpus), "--home", str(home)])
    assert code == 2
    line = _one_error_line(capsys)
    assert "fine-tuning space" in line and "--warm-start" in line and "1e-05..0.001" in line
    assert not home.exists()


def test_corrupt_base_checkpoint_is_refused(tmp_path: Path, capsys, short_corpus: Path) -> None:
    ckpt = tmp_path / "base.pt"
    ckpt.write_bytes(b"not a checkpoint")
    code = main(["run-study", "--space", "default", "--data", str(short_corpus), "--warm-start", str(ckpt),
                 "--home", str(tmp_path / "home")])
    assert code == 2
    assert "not a readable checkpoint" in _one_error_line(capsys)
    assert not (tmp_path / "home").exists()


def test_base_checkpoint_reading_another_frontend_names_the_fixed_key(tmp_path: Path, capsys,
                                                                      short_corpus: Path) -> None:
    # A base trained before phonemes became the default reads characters: the error says how to follow it.
    from trainer.config import preset
    from trainer.model.architectures import build_model
    from trainer.model.checkpoint import save_checkpoint

    config = preset("tiny").replace(text_frontend="characters")
    ckpt = save_checkpoint(tmp_path / "base.pt", model=build_model(config), optimizer=None, config=config.to_dict(),
                           position={"step": 1, "epoch": 0, "batch": 0}, schedule={"frames_per_char": 5.0})
    code = main(["run-study", "--space", "default", "--data", str(short_corpus), "--warm-start", str(ckpt),
                 "--home", str(tmp_path / "home")])
    assert code == 2
    line = _one_error_line(capsys)
    assert "text_frontend=characters" in line and "add `text_frontend: characters` under the space's fixed" in line
    assert not (tmp_path / "home").exists()


def test_missing_corpus_is_an_input_error(tmp_path: Path, capsys) -> None:
    code = main(["run-study", "--space", "scratch", "--data", str(tmp_path / "nope"), "--home", str(tmp_path / "h")])
    assert code == 2
    assert "corpus not found" in _one_error_line(capsys)


def test_unreachable_postgres_is_named_without_its_password(tmp_path: Path, capsys, short_corpus: Path) -> None:
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/studies"
    code = main(["run-study", "--space", "scratch", "--data", str(short_corpus), "--storage", url,
                 "--home", str(tmp_path / "home"), "--no-mlflow"])
    assert code == 2
    captured_line = _one_error_line(capsys)
    assert "cannot reach the database server at 127.0.0.1:1" in captured_line
    assert "s3cr3t-pw" not in captured_line and "alice:***@" in captured_line


def test_wait_for_storage_retries_an_unreachable_server_then_names_the_wait(tmp_path: Path, capsys,
                                                                          short_corpus: Path) -> None:
    url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/studies"
    started = time.monotonic()
    code = main(["run-study", "--space", "scratch", "--data", str(short_corpus), "--storage", url,
                 "--home", str(tmp_path / "home"), "--no-mlflow", "--wait-for-storage", "2"])
    assert code == 2 and time.monotonic() - started >= 2
    captured = capsys.readouterr()
    assert "waiting for it, up to 2 s" in captured.out
    error = captured.err.strip().splitlines()
    assert len(error) == 1 and "cannot reach the database server at 127.0.0.1:1" in error[0]
    assert "(waited 2 s)" in error[0]
    assert "s3cr3t-pw" not in captured.out + captured.err


@pytest.mark.parametrize(("args", "needle"), [
    (["--gpus", "a,b"], "--gpus"),
    (["--trials", "0"], "--trials must be >= 1"),
    (["--max-steps", "-3"], "--max-steps must be >= 1"),
    (["--wait-for-storage", "-1"], "--wait-for-storage must be 0 or more seconds, got -1.0"),
    (["--storage", "redis://localhost"], "expected sqlite:///PATH, postgresql://USER@HOST/DB or journal:///PATH"),
])
def test_bad_arguments(tmp_path: Path, capsys, short_corpus: Path, args: list[str], needle: str) -> None:
    code = main(["run-study", "--space", "scratch", "--data", str(short_corpus), "--home", str(tmp_path / "h"), *args])
    assert code == 2
    assert needle in _one_error_line(capsys)
    assert not (tmp_path / "h").exists()


def test_status_of_a_missing_storage(tmp_path: Path, capsys) -> None:
    assert main(["status", "--home", str(tmp_path / "h")]) == 2
    assert "no such database file" in _one_error_line(capsys)
    assert not (tmp_path / "h").exists()


def test_mlflow_and_optuna_may_not_share_a_database() -> None:
    from tuner.errors import TunerError
    from tuner.tracking.runs import check_separate

    with pytest.raises(TunerError, match="alembic_version"):
        check_separate("postgresql://u:p@db:5432/hpo", "postgresql+psycopg://u@db/hpo")
    check_separate("postgresql://u:p@db:5432/mlflow", "postgresql+psycopg://u@db/hpo")


def test_mask_url_hides_passwords() -> None:
    from tuner.study.urls import mask_url, normalize_url

    assert normalize_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert "pw" not in mask_url("postgresql+psycopg://u:pw@h/db")
    assert mask_url("http://u:pw@mlflow:5000") == "http://u:***@mlflow:5000"
    assert mask_url("https://TOKEN@mlflow.example/a@b") == "https://***@mlflow.example/a@b"  # a lone token too
    assert mask_url("http://mlflow:5000") == "http://mlflow:5000"
    # The query string's credentials too: libpq's password and sslpassword, tokens and keys.
    assert mask_url("postgresql+psycopg://u@h/db?password=pw&sslmode=require") == (
        "postgresql+psycopg://u@h/db?password=***&sslmode=require")
    assert mask_url("postgresql://u@h/db?sslpassword=k%20y&application_name=tuner") == (
        "postgresql://u@h/db?sslpassword=***&application_name=tuner")
    assert mask_url("https://mlflow.example/?access_token=abc#top") == "https://mlflow.example/?access_token=***#top"
    assert mask_url("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"


def test_scrub_removes_every_credential_of_the_url_from_a_driver_message() -> None:
    from tuner.study.urls import scrub

    url = "postgresql+psycopg://u:pw1@h/db?password=pw2&sslpassword=k%20y"
    assert scrub("auth failed: pw1 pw2 k y k%20y", url) == "auth failed: *** *** *** ***"


def test_a_trials_mlflow_link_never_carries_the_trackers_password() -> None:
    from tuner.tracking.runs import StudyTracker

    tracker = StudyTracker(client=None, uri="http://user:s3cret@mlflow.example:5000", experiment_id="7",
                           parent_run_id="p", study_name="s")
    link = tracker.run_link("abc")  # stored on the trial (mlflow_run) and exported to best.json
    assert "s3cret" not in link and link == "http://user:***@mlflow.example:5000/#/experiments/7/runs/abc"


def test_check_space_describes_the_default_space(capsys) -> None:
    assert main(["check-space", "default"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate: float 1e-05..0.001 log (default 1e-05)" in out
    assert "dropout: float 0.02..0.3 (default 0.1) -> prenet_dropout" in out
    assert "fine-tuning" in out


def test_unknown_objective_is_refused_with_file_line_before_anything_is_written(tmp_path: Path, capsys,
                                                                                  short_corpus: Path) -> None:
    space = tmp_path / "typo.yaml"
    space.write_text("preset: tiny\nstudy:\n  name: typo\n  objective: val_mel_l1\n"
                     "params:\n  learning_rate: {low: 1.0e-4, high: 1.0e-3, log: true}\n", encoding="utf-8")
    home, db = tmp_path / "home", tmp_path / "store" / "optuna.db"
    code = main(["run-study", "--space", str(space), "--data", str(short_corpus), "--home", str(home),
                 "--storage", f"sqlite:///{db}"])
    assert code == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"tuner: error: {space}:4: study.objective: unknown metric 'val_mel_l1'; did you mean ")
    assert "val_mel_postnet_l1" in line
    assert not home.exists() and not db.parent.exists()


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom: an internal fault")


def test_an_internal_error_is_a_bug_exit_1_with_the_traceback_under_debug(monkeypatch, capsys) -> None:
    import tuner.space.load

    monkeypatch.setattr(tuner.space.load, "load_space", _boom)
    monkeypatch.delenv("SMART_TUNER_DEBUG", raising=False)
    assert main(["check-space", "default"]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("tuner: internal error: RuntimeError: boom: an internal fault")
    assert "tuner --debug" in lines[0]

    assert main(["--debug", "check-space", "default"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "in _boom" in err and "RuntimeError: boom" in err

    monkeypatch.setenv("SMART_TUNER_DEBUG", "1")
    assert main(["check-space", "default"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_a_plain_value_error_is_a_bug_not_bad_input(monkeypatch, capsys) -> None:
    # Only UserError (every TunerError) means bad input; a ValueError from our own code is a bug.
    import tuner.space.load

    def value_error(*args: object) -> None:
        raise ValueError("an internal ValueError")

    monkeypatch.setattr(tuner.space.load, "load_space", value_error)
    assert main(["check-space", "default"]) == 1
    assert "internal error: ValueError: an internal ValueError" in capsys.readouterr().err


def test_a_user_error_still_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["--debug", "check-space", str(tmp_path / "nope.yaml")]) == 2
    line = _one_error_line(capsys)
    assert line == f"tuner: error: {tmp_path / 'nope.yaml'}: search-space file not found"


def test_an_interrupt_says_how_to_continue(monkeypatch, capsys) -> None:
    import tuner.space.load

    def interrupt(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tuner.space.load, "load_space", interrupt)
    assert main(["check-space", "default"]) == 130
    assert capsys.readouterr().err.strip() == (
        "tuner: interrupted (the running trial is failed; run the same command to continue)")


def test_metrics_lists_every_registered_metric(capsys) -> None:
    import json

    from trainer.evaluation import metric_registry

    assert main(["metrics", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == json.loads(json.dumps(metric_registry.definitions()))
    assert {"quality_score", "val_mel_postnet_l1", "tf_diagonality", "lr"} <= {m["name"] for m in listed}
    assert "quality" not in {m["name"] for m in listed}

    assert main(["metrics"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "direction", "range", "label", "meaning"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {m.name for m in metric_registry.all_metrics()}
    assert rows["tf_diagonality"][1:4] == ["maximize", "0..1", "diag"]
    assert rows["val_mel_postnet_l1"][1:4] == ["minimize", "0..inf", "mel_l1"]
    assert rows["lr"][1] == "informational"


def _alias_bomb(levels: int) -> str:
    """A few hundred bytes whose aliases expand to 10**levels values."""
    lines = ["description:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("body", "problem"), [
    (_alias_bomb(9) + "study: {name: x}\n", ":6: invalid YAML (the document holds more than 20000 values once its "
                                            "aliases are expanded (nested aliases?))"),
    ("description: &d [1, *d]\nstudy: {name: x}\n", ":1: invalid YAML (the alias *d refers to the node that contains "
                                                    "it (a recursive alias))"),
])
def test_yaml_aliases_cannot_blow_up_a_space_file(tmp_path: Path, capsys, body: str, problem: str) -> None:
    # Before: 377 bytes of nested aliases took 14 s and 2.7 GB, one more level 27 GB; a recursive alias was a bug.
    path = tmp_path / "bomb.yaml"
    path.write_text(body)
    started = time.monotonic()
    assert main(["check-space", str(path)]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tuner: error: {path}{problem}"]


@pytest.mark.parametrize("name", [".", "..", " "])
def test_a_study_named_like_a_folder_is_refused(tmp_path: Path, capsys, short_corpus: Path, name: str) -> None:
    # Before: `..` passed, and its trials' folders landed beside runs/ instead of inside it.
    space = tmp_path / "space.yaml"
    space.write_text(f'study: {{name: "{name}"}}\nparams:\n  learning_rate: {{low: 1.0e-4, high: 1.0e-3}}\n')
    assert main(["check-space", str(space)]) == 2
    assert capsys.readouterr().err.strip().startswith(f"tuner: error: {space}:1: study.name: a study name ")
    assert main(["run-study", "--space", "default", "--study", name, "--data", str(short_corpus),
                 "--home", str(tmp_path / "home")]) == 2
    assert "--study: a study name" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()
