"""The `tuner` command's conventions: where it looks for a study and says so, Optuna's storage variable and
option names, machine-readable status, help on every flag, --version.

The studies here are real Optuna studies in SQLite files, their trials told through Optuna's own
ask-and-tell interface (no training: these tests are about reading a study).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from trainer.console import distribution_version
from tuner.cli import build_parser, main
from tuner.study.storage import storage_setting

LR = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True)}


@pytest.fixture(autouse=True)
def _no_storage_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SMART_TUNER_HOME", "SMART_TUNER_STORAGE", "OPTUNA_STORAGE", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the default home ./studies would land here


def make_study(db: Path, name: str = "s") -> str:
    """Create study ``name`` in SQLite file ``db`` with a complete, a pruned and a failed trial; return the URL."""
    url = f"sqlite:///{db}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name=name, storage=url, direction="minimize")
    study.set_user_attr("objective", ["fr_mcd"])
    done = study.ask(LR)
    for key, value in {"last_step": 8, "best_step": 4, "run_dir": "/runs/s/trial-0000", "worker": "host:1",
                       "last_metrics": {"fr_mcd": 61.5, "tf_diagonality": float("nan"), "quality_score": 0.4},
                       "timing": {"train_s": 3.0}, "mlflow_run_id": "abc"}.items():
        done.set_user_attr(key, value)
    study.tell(done, 61.25)
    pruned = study.ask(LR)
    pruned.set_user_attr("prune_reason", "quality gate: tf_diagonality 0.1 < 0.2 at step 4")
    pruned.set_user_attr("last_metrics", {"tf_diagonality": 0.1})
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask(LR)
    failed.set_user_attr("fail_reason", "the trial process died (exit 86)")
    study.tell(failed, state=TrialState.FAIL)
    return url


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tuner: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# --------------------------------------------------------------------------- storage and study names


def test_storage_order_is_option_then_ours_then_optunas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys) -> None:
    urls = {name: make_study(tmp_path / f"{name}.db", name) for name in ("optuna", "ours", "option")}
    assert storage_setting(None) == (None, "the home's default")
    monkeypatch.setenv("OPTUNA_STORAGE", urls["optuna"])
    assert storage_setting(None) == (urls["optuna"], "$OPTUNA_STORAGE")
    assert main(["status", "--home", str(tmp_path / "empty-home")]) == 0
    assert "study 'optuna'" in capsys.readouterr().out
    monkeypatch.setenv("SMART_TUNER_STORAGE", urls["ours"])
    assert main(["status"]) == 0
    assert "study 'ours'" in capsys.readouterr().out
    assert main(["status", "--storage", urls["option"]]) == 0
    assert "study 'option'" in capsys.readouterr().out
    monkeypatch.setenv("SMART_TUNER_STORAGE", "")  # empty counts as unset
    assert storage_setting(None) == (urls["optuna"], "$OPTUNA_STORAGE")


def test_study_name_is_an_alias_of_study(tmp_path: Path, capsys) -> None:
    url = make_study(tmp_path / "two.db", "first")
    make_study(tmp_path / "two.db", "second")
    assert main(["status", "--storage", url]) == 2
    assert "holds several studies (first, second); pick one with --study" in _one_error_line(capsys)
    for option in ("--study", "--study-name"):
        assert main(["status", "--storage", url, option, "second"]) == 0
        assert "study 'second'" in capsys.readouterr().out
        assert main(["best", "--storage", url, option, "second"]) == 0
        assert "best trial #0: fr_mcd 61.2500" in capsys.readouterr().out
    args = build_parser().parse_args(["run-study", "--space", "default", "--study-name", "x"])
    assert args.study == "x"


# --------------------------------------------------------------------------- nothing found: where it looked


@pytest.mark.parametrize("command", ["status", "best", "dashboard"])
def test_a_missing_storage_says_where_it_looked_and_how_to_point_elsewhere(tmp_path: Path, capsys,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           command: str) -> None:
    home = tmp_path / "nowhere"
    assert main([command, "--home", str(home)]) == 2
    line = _one_error_line(capsys)
    assert f"storage sqlite:///{home}/optuna.db: no such database file" in line
    assert f"looked in home {home} (--home) and storage sqlite:///{home}/optuna.db (the home's default)" in line
    assert "point elsewhere with --home DIR or $SMART_TUNER_HOME, or --storage URL, $SMART_TUNER_STORAGE or " \
           "$OPTUNA_STORAGE" in line
    monkeypatch.setenv("SMART_TUNER_HOME", str(home))
    assert main([command]) == 2
    assert f"looked in home {home} ($SMART_TUNER_HOME)" in _one_error_line(capsys)
    monkeypatch.delenv("SMART_TUNER_HOME")
    assert main([command]) == 2
    assert f"looked in home {tmp_path / 'studies'} (the default: ./studies of the current folder)" in \
        _one_error_line(capsys)
    assert not home.exists() and not (tmp_path / "studies").exists()


def test_an_empty_storage_and_an_unknown_study_say_where_they_looked(tmp_path: Path, capsys,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.storages.RDBStorage(empty)  # Optuna's tables, no study
    monkeypatch.setenv("OPTUNA_STORAGE", empty)
    assert main(["status"]) == 2
    line = _one_error_line(capsys)
    assert f"storage {empty} holds no study yet; looked in home" in line
    assert f"and storage {empty} ($OPTUNA_STORAGE); point elsewhere" in line
    url = make_study(tmp_path / "one.db", "real")
    assert main(["best", "--storage", url, "--study", "imagined"]) == 2
    line = _one_error_line(capsys)
    assert f"no study 'imagined' in {url} (studies: real); looked in" in line and "(--storage)" in line


def test_the_dashboard_of_an_empty_storage_says_so_and_serves(tmp_path: Path, free_port) -> None:
    # Workers may create the study after the dashboard starts (docker-compose.yml): not an error.
    home = tmp_path / "home"
    home.mkdir()
    optuna.storages.RDBStorage(f"sqlite:///{home / 'optuna.db'}")  # Optuna's tables, no study
    process = subprocess.Popen([sys.executable, "-m", "tuner.cli", "dashboard", "--home", str(home), "--port",
                                str(free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith(f"no study yet in sqlite:///{home}/optuna.db: the dashboard shows studies as "
                                "workers create them; looked in home"), first
        assert "optuna-dashboard for" in process.stdout.readline()
        time.sleep(0.5)
        assert process.poll() is None  # still serving
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------- status for machines


def test_status_as_json_has_one_object_per_trial(tmp_path: Path, capsys) -> None:
    url = make_study(tmp_path / "s.db")
    assert main(["status", "--storage", url, "--format", "json"]) == 0
    trials = json.loads(capsys.readouterr().out)  # nothing but the JSON on stdout
    assert [(t["number"], t["state"]) for t in trials] == [(0, "COMPLETE"), (1, "PRUNED"), (2, "FAIL")]
    done, pruned, failed = trials
    assert done["values"] == [61.25] and pruned["values"] is None
    assert set(done["params"]) == {"learning_rate"} and 1e-5 <= done["params"]["learning_rate"] <= 1e-3
    assert done["user_attrs"] == {"last_step": 8, "best_step": 4, "run_dir": "/runs/s/trial-0000", "worker": "host:1",
                                  "last_metrics": {"fr_mcd": 61.5, "tf_diagonality": None, "quality_score": 0.4}}
    assert pruned["user_attrs"]["prune_reason"].startswith("quality gate: tf_diagonality")
    # A study stored before stop reasons existed: its texts are read, and their kinds told from them.
    assert pruned["user_attrs"]["stop_reason"]["kind"] == "gated"
    assert failed["user_attrs"] == {"fail_reason": "the trial process died (exit 86)",
                                    "stop_reason": {"kind": "failed", "detail": "the trial process died (exit 86)",
                                                    "step": None}}
    assert done["datetime_start"] <= done["datetime_complete"] and done["duration_s"] >= 0


def test_status_as_csv_has_a_header_and_a_row_per_trial(tmp_path: Path, capsys) -> None:
    url = make_study(tmp_path / "s.db")
    assert main(["status", "--storage", url, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["number"], r["state"]) for r in rows] == [("0", "COMPLETE"), ("1", "PRUNED"), ("2", "FAIL")]
    header = list(rows[0])
    assert header[:3] == ["number", "state", "value"] and "params_learning_rate" in header
    # The last validation's figures under their registry names, in registry order.
    assert header.index("tf_diagonality") < header.index("fr_mcd") < header.index("quality_score")
    assert rows[0]["value"] == "61.25" and rows[0]["fr_mcd"] == "61.5" and rows[0]["tf_diagonality"] == ""
    assert rows[1]["value"] == "" and rows[1]["prune_reason"].startswith("quality gate")
    assert rows[2]["fail_reason"] == rows[2]["stop_reason"] == "the trial process died (exit 86)"
    assert [r["stop_kind"] for r in rows] == ["", "gated", "failed"]


# --------------------------------------------------------------------------- help and version


def _actions(parser):
    """Yield (command path, action) for every action of ``parser`` and its sub-commands."""
    import argparse

    stack = [((parser.prog,), parser)]
    while stack:
        path, current = stack.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name, sub in action.choices.items():
                    yield (*path, name), argparse.Action([name], name, help=helps.get(name))
                    stack.append(((*path, name), sub))
            else:
                yield path, action


@pytest.mark.parametrize("program", ["tuner", "trainer"])
def test_every_flag_and_command_has_help(program: str) -> None:
    import argparse

    if program == "tuner":
        parser = build_parser()
    else:
        from trainer.cli import build_parser as trainer_parser

        parser = trainer_parser()
    missing = [(" ".join(path), action.option_strings or action.dest) for path, action in _actions(parser)
               if not action.help or action.help == argparse.SUPPRESS]
    assert missing == []
    assert sum(1 for _ in _actions(parser)) > 20


@pytest.mark.parametrize("program", ["tuner", "trainer"])
def test_version_is_the_distributions(program: str, capsys) -> None:
    from importlib import metadata

    if program == "tuner":
        entry = main
    else:
        from trainer.cli import main as entry
    with pytest.raises(SystemExit) as stop:
        entry(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"{program} {metadata.version('smart-tuner')}"
    assert distribution_version() == metadata.version("smart-tuner")
