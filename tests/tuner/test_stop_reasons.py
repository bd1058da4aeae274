"""One stop reason per trial, written once by the worker: `tuner status`, MLflow and the dashboard note show it.

A real worker loop runs trials whose verdicts are prepared (no training): one of every kind the
lease does not retry, and every retried kind with no retries left. Each trial's ``stop_reason``
attribute, its MLflow run's tags, its row of the status table and its dashboard note must all
say the same kind and words.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tuner.commands.status import trial_records, trials_csv, trials_table
from tuner.fleet.endings import KINDS, StopReason, Verdict
from tuner.fleet.worker import Worker
from tuner.paths import Home
from tuner.space.load import load_space
from tuner.study.storage import check_storage, open_storage
from tuner.study.timeouts import timeouts
from tuner.trial.observers import LiveView, Observers, trial_note
from tuner.trial.protocol import Outcome

STATE = {"completed": "complete", "controller": "complete", "pruned": "pruned", "gated": "pruned"}
# The finished kinds come last: the worker stops once the study holds 4 finished trials. A full disk
# stops its worker: a second one meets it.
ORDER = [k for k in KINDS if k not in STATE and k != "disk_full"] + list(STATE)


@pytest.fixture()
def ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast_space_writer) -> dict:
    from tuner.tracking.runs import StudyTracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = Home(tmp_path / "home")
    url = f"sqlite:///{home.optuna_db}"
    check_storage(url)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(storage=open_storage(url), study_name="stops")
    space = load_space(fast_space_writer(tmp_path, study="stops", gates="[]"))
    tracker = StudyTracker.open(home, study, space, url, {})
    observers = Observers(LiveView(study, quiet=True), home, space, tracker)
    kinds = list(ORDER)
    runs: dict[str, str] = {}

    def run_trial(trial, lease) -> Verdict:
        kind = kinds.pop(0)
        run_dir = home.trial_dir("stops", trial.number)
        run_dir.mkdir(parents=True)
        run_id = observers.started(trial, {}, {}, run_dir, "this machine", "test")
        stop = StopReason(kind, f"the {kind} detail", 7)
        values = [1.0] if STATE.get(kind) == "complete" else None
        verdict = Verdict(STATE.get(kind, "failed"), stop, values)
        observers.finished(trial, verdict, Outcome(verdict.state, stop, values=values), run_dir, run_id)
        runs[kind] = run_id
        return verdict

    worker = Worker(study, run_trial, target=4, timeouts=timeouts(), max_retries=0, max_consecutive_failures=99,
                    say=lambda line: None)
    assert worker.run().exit_code == 0 and not kinds
    kinds.append("disk_full")
    second = Worker(study, run_trial, target=5, timeouts=timeouts(), max_retries=0, say=lambda line: None).run()
    assert second.exit_code == 1 and second.reason.startswith("the disk_full detail; stopping this worker")
    return {"study": study, "tracker": tracker, "runs": runs, "space": space}


def test_each_kind_is_stored_once_and_shown_alike(ended: dict) -> None:
    study, client, runs = ended["study"], ended["tracker"].client, ended["runs"]
    trials = {StopReason.of(t).kind: t for t in study.trials}
    assert sorted(trials) == sorted(KINDS)
    table = trials_table(study)
    records = {r["number"]: r for r in trial_records(study)}
    rows = {int(r["number"]): r for r in csv.DictReader(io.StringIO(trials_csv(study)))}
    for kind, trial in trials.items():
        words = f"the {kind} detail"
        assert trial.user_attrs["stop_reason"] == {"kind": kind, "detail": words, "step": 7}
        assert "prune_reason" not in trial.user_attrs and "fail_reason" not in trial.user_attrs
        expected_state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(STATE.get(kind, ""),
                                                                                            TrialState.FAIL)
        assert trial.state == expected_state
        # tuner status: the table's reason column, the JSON record, the CSV columns.
        line = next(line for line in table.splitlines() if line.startswith(f"{trial.number} "))
        assert line.rstrip().endswith(words), line
        assert records[trial.number]["user_attrs"]["stop_reason"]["kind"] == kind
        assert (rows[trial.number]["stop_kind"], rows[trial.number]["stop_reason"]) == (kind, words)
        # MLflow: the trial's run carries the kind and the words.
        tags = client.get_run(runs[kind]).data.tags
        assert (tags["stop_kind"], tags["stop_reason"]) == (kind, words)
        # The dashboard note says it in words.
        note = trial_note(trial.number, Verdict(STATE.get(kind, "failed"), StopReason.of(trial)),
                          Outcome("failed"), ended["space"], [])
        assert f"Stopped: **{kind.replace('_', ' ')}** at step 7: {words}." in note
    assert json.dumps(records)  # plain JSON


def test_an_observer_that_fails_costs_its_line_not_the_trial(tmp_path: Path, fast_space_writer) -> None:
    study = optuna.create_study()
    stream = io.StringIO()
    observers = Observers(LiveView(study, stream=stream), Home(tmp_path), load_space(fast_space_writer(tmp_path)))

    def broken() -> int:
        raise ConnectionError("MLflow is down")

    assert observers.best_effort("mlflow: could not log", broken) is None
    assert observers.best_effort("fine", lambda: 42) == 42
    assert stream.getvalue().strip() == "mlflow: could not log (ConnectionError: MLflow is down)"
