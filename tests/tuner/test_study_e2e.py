"""An end-to-end study on CPU (tiny preset, short trials, SQLite), checked in Optuna, MLflow and the dashboard.

One study runs once for the module: trial 0 is the space's defaults (learning rate 3e-3, which
starts to align within 4 steps); trial 1 is a learning rate too small to align (1e-7), queued by
the test, which the diagonality gate prunes at step 4. The last test resumes the study.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuner.cli import main


@dataclass
class StudyRun:
    home: Path
    space: Path
    storage: str
    output: str
    code: int


@pytest.fixture(scope="module")
def study_run(tmp_path_factory: pytest.TempPathFactory, short_corpus: Path, fast_space_writer) -> StudyRun:
    import optuna

    from tuner.space.load import load_space
    from tuner.study.storage import check_storage
    from tuner.study.studies import open_study

    folder = tmp_path_factory.mktemp("e2e")
    home = folder / "home"
    space_path = fast_space_writer(folder, study="e2e")
    storage = f"sqlite:///{home}/optuna.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.delenv("SMART_TUNER_FAULT", raising=False)
        patch.delenv("SMART_TUNER_HOME", raising=False)
        # Create the study as run-study would (defaults enqueued first), then queue a rate too small to align.
        check_storage(storage)
        opened = open_study(load_space(space_path), "e2e", storage, 8, optuna.pruners.NopPruner())
        opened.study.enqueue_trial({"learning_rate": 1e-7}, user_attrs={"origin": "test: too small to align"})
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["run-study", "--space", str(space_path), "--data", str(short_corpus), "--home", str(home),
                         "--trials", "2"])
    return StudyRun(home, space_path, storage, buffer.getvalue(), code)


def _study(run: StudyRun):
    import optuna

    return optuna.load_study(study_name="e2e", storage=run.storage)


def test_study_finishes_with_one_complete_and_one_gated_trial(study_run: StudyRun) -> None:
    from optuna.trial import TrialState

    assert study_run.code == 0, study_run.output
    trials = _study(study_run).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED], [
        (t.state, t.user_attrs) for t in trials]
    first, gated = trials
    assert first.params == {"learning_rate": 3e-3} and first.user_attrs["origin"] == "space defaults"
    assert gated.params == {"learning_rate": 1e-7}
    # Intermediate values: every validation of the full trial, only up to the gate for the pruned one.
    assert sorted(first.intermediate_values) == [4, 8]
    assert sorted(gated.intermediate_values) == [4]
    assert first.value == pytest.approx(min(first.intermediate_values.values()))
    assert 0 < first.value < 10
    # One stop reason per trial: the gate, naming its metric and the figure; the full trial trained its budget.
    stop = gated.user_attrs["stop_reason"]
    assert stop["kind"] == "gated" and stop["step"] == 4
    assert stop["detail"].startswith("quality gate: tf_diagonality") and "< 0.2 at step 4" in stop["detail"]
    diagonality = [t.user_attrs["last_metrics"]["tf_diagonality"] for t in (gated, first)]
    assert diagonality[0] < 0.2 <= diagonality[1]
    assert first.user_attrs["stop_reason"] == {"kind": "completed", "detail": "trained its budget of 8 steps",
                                               "step": 8}
    assert "prune_reason" not in first.user_attrs and "fail_reason" not in first.user_attrs  # written once, as stop
    assert first.user_attrs["best_step"] in (4, 8)
    assert Path(first.user_attrs["run_dir"], "checkpoints", "best.pt").is_file()


def test_live_view_and_final_table(study_run: StudyRun) -> None:
    out = study_run.output
    # The live view shows the registry's labelled metrics, in registry order.
    assert "trial 0 started" in out and "trial 0 step 4/8: diag" in out and "gate_ba" in out and "mel_l1" in out
    assert "trial 1 PRUNED at step 4: quality gate: tf_diagonality" in out
    assert "done 1, pruned 1, failed 0, running 0; best #0" in out
    assert "2 trials: complete 1, pruned 1" in out
    assert "best trial #0: val_mel_postnet_l1" in out


def test_run_study_ends_with_the_commands_that_look_at_this_study(study_run: StudyRun) -> None:
    tail = study_run.output[study_run.output.index("look at this study:"):].splitlines()
    where = f"--home {study_run.home} --storage sqlite:///{study_run.home}/optuna.db"
    assert tail[1].startswith(f"  tuner dashboard {where}  #")
    assert tail[2].startswith(f"  mlflow ui --backend-store-uri sqlite:///{study_run.home}/mlflow.db  #")
    # The runs table, not MLflow 3's GenAI overview (empty for a study): the experiment's own address.
    experiment = _study(study_run).user_attrs["mlflow_experiment_id"]
    assert tail[2].endswith(f"the study's runs: http://127.0.0.1:5000/#/experiments/{experiment}/runs")
    assert tail[3].startswith(f"  tuner best {where} --study e2e --export best-e2e  #")
    assert tail[4].startswith(f"  tuner train-best {where} --study e2e  #")


def test_status_gives_the_address_of_the_study_s_runs_table(study_run: StudyRun, capsys) -> None:
    import mlflow

    assert main(["status", "--home", str(study_run.home)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    experiment = _study(study_run).user_attrs["mlflow_experiment_id"]
    assert last == f"MLflow runs of this study: http://127.0.0.1:5000/#/experiments/{experiment}/runs"
    client = mlflow.MlflowClient(f"sqlite:///{study_run.home}/mlflow.db")
    assert client.get_experiment(experiment).name == "e2e"  # the id is the study's own experiment


def test_status_for_machines_matches_the_study(study_run: StudyRun, capsys) -> None:
    import csv

    assert main(["status", "--home", str(study_run.home), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    trials = _study(study_run).trials
    assert [(r["number"], r["state"], r["values"], r["params"]) for r in records] == [
        (t.number, t.state.name, t.values, t.params) for t in trials]
    assert records[1]["user_attrs"]["stop_reason"] == trials[1].user_attrs["stop_reason"]
    assert records[1]["user_attrs"]["prune_reason"] == trials[1].user_attrs["stop_reason"]["detail"]
    assert records[0]["user_attrs"]["best_step"] == trials[0].user_attrs["best_step"]
    assert records[0]["user_attrs"]["mlflow_run"] == trials[0].user_attrs["mlflow_run"]
    assert main(["status", "--home", str(study_run.home), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [float(r["value"]) for r in rows] == [t.value for t in trials]  # a pruned trial's: its last report
    assert float(rows[0]["params_learning_rate"]) == 3e-3 and rows[1]["prune_reason"].startswith("quality gate")
    assert [r["stop_kind"] for r in rows] == ["completed", "gated"]
    assert rows[1]["stop_reason"] == rows[1]["prune_reason"]
    assert float(rows[0]["tf_diagonality"]) == pytest.approx(trials[0].user_attrs["last_metrics"]["tf_diagonality"])


def test_mlflow_has_a_parent_run_and_a_nested_run_per_trial(study_run: StudyRun) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{study_run.home}/mlflow.db")
    experiment = client.get_experiment_by_name("e2e")
    assert experiment is not None
    assert experiment.artifact_location.startswith((study_run.home / "mlartifacts").as_uri())
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("smart_tuner.role") == "study"]
    children = {r.data.tags["smart_tuner.trial"]: r for r in runs if r.data.tags.get("smart_tuner.role") == "trial"}
    assert len(parents) == 1 and set(children) == {"0", "1"}
    parent_id = parents[0].info.run_id
    assert all(r.data.tags["mlflow.parentRunId"] == parent_id for r in children.values())
    assert parents[0].data.params["space"] == study_run.space.name
    # Its description says where the trials, the dashboard and the report are.
    note = parents[0].data.tags["mlflow.note.content"]
    assert "nested under this one" in note and "tuner dashboard --storage" in note
    assert "tuner report --study e2e" in note
    # The parent run declares every metric the runs report (trainer.evaluation.metric_registry).
    definitions = json.loads(Path(client.download_artifacts(parent_id, "metric_definitions.json")).read_text())
    declared = {d["name"]: d for d in definitions}
    assert declared["quality_score"]["direction"] == "maximize" and declared["tf_diagonality"]["high"] == 1.0
    assert "quality" not in declared

    done, gated = children["0"], children["1"]
    assert done.data.tags["state"] == "COMPLETE" and done.info.status == "FINISHED"
    assert gated.data.tags["state"] == "PRUNED" and gated.info.status == "KILLED"
    assert gated.data.tags["stop_kind"] == "gated" and done.data.tags["stop_kind"] == "completed"
    assert gated.data.tags["stop_reason"].startswith("quality gate: tf_diagonality")
    assert float(done.data.params["learning_rate"]) == 3e-3
    for key in ("val_mel_postnet_l1", "val_total", "val_gate", "tf_diagonality", "tf_focus", "tf_monotonicity",
                "tf_coverage", "tf_gate_balanced_accuracy", "fr_mcd", "fr_length_ratio", "fr_out_of_range"):
        assert [m.step for m in client.get_metric_history(done.info.run_id, key)] == [4, 8], key
    assert client.get_metric_history(done.info.run_id, "train_total")  # the training losses too
    assert [m.step for m in client.get_metric_history(gated.info.run_id, "tf_diagonality")] == [4]

    def files(run_id: str, path: str = "") -> set[str]:
        found = set()
        for item in client.list_artifacts(run_id, path or None):
            found |= files(run_id, item.path) if item.is_dir else {item.path}
        return found

    assert {"plots/alignment.png", "plots/mel.png", "samples/sample-1.wav", "config/config.yaml"} <= files(
        done.info.run_id)
    assert {"plots/alignment.png", "config/config.yaml"} <= files(gated.info.run_id)
    # Every validation's pictures and free-running sample, streamed while the trial ran.
    for step in ("step_000004", "step_000008"):
        assert {f"validation/{step}/{name}" for name in ("alignment_tf.png", "alignment_fr.png", "mel.png", "gate.png",
                                                          "sample.wav")} <= files(done.info.run_id)
    assert {"validation/step_000004/sample.wav"} <= files(gated.info.run_id)  # a pruned trial's too
    local = Path(client.download_artifacts(done.info.run_id, "samples/sample-1.wav"))
    assert local.read_bytes()[:4] == b"RIFF"
    # Streamed, not copied at the end: step 4's sample reached MLflow before the trainer wrote step 8's.
    stored = Path(done.info.artifact_uri.removeprefix("file://")) / "validation" / "step_000004" / "sample.wav"
    run_dir = Path(_study(study_run).trials[0].user_attrs["run_dir"])
    assert stored.stat().st_mtime < (run_dir / "plots" / "step_000008_sample.wav").stat().st_mtime


def test_trials_link_to_mlflow_and_carry_dashboard_artifacts(study_run: StudyRun) -> None:
    from optuna.artifacts import get_all_artifact_meta

    from tuner.study.optuna_api import storage_of

    study = _study(study_run)
    first = study.trials[0]
    assert first.user_attrs["mlflow_run_id"] and "run" in first.user_attrs["mlflow_run"]
    names = {meta.filename: meta for meta in get_all_artifact_meta(first, storage=storage_of(study))}
    assert {"alignment.png", "sample-1.wav"} <= set(names)
    # Each validation's free-running alignment and sample, uploaded while the trial ran.
    assert {"step_000004_alignment_fr.png", "step_000004_sample.wav", "step_000008_sample.wav"} <= set(names)
    # The dashboard names the objective instead of "Objective 0".
    assert study.metric_names == ["val_mel_postnet_l1"]
    assert names["sample-1.wav"].mimetype.startswith("audio/")
    stored = study_run.home / "artifacts" / names["alignment.png"].artifact_id
    assert stored.read_bytes()[:4] == b"\x89PNG"


def test_status_and_best_export(study_run: StudyRun, tmp_path: Path, capsys) -> None:
    assert main(["status", "--home", str(study_run.home)]) == 0
    out = capsys.readouterr().out
    assert "COMPLETE" in out and "PRUNED" in out and "quality gate: tf_diagonality" in out

    export = tmp_path / "best"
    assert main(["best", "--home", str(study_run.home), "--study", "e2e", "--export", str(export)]) == 0
    assert "best trial #0" in capsys.readouterr().out
    exported = {p.name for p in export.iterdir()}
    assert {"config.yaml", "best.pt", "sample-1.wav", "alignment.png", "best.json"} <= exported
    summary = json.loads((export / "best.json").read_text())
    assert summary["trial"] == 0 and summary["params"] == {"learning_rate": 3e-3}
    # The trial's value is the objective of the checkpoint it exports, and that checkpoint's fr_mcd comes along.
    from trainer.model.checkpoint import load_checkpoint

    trial = _study(study_run).trials[0]
    assert load_checkpoint(export / "best.pt")["metrics"]["val_mel_postnet_l1"] == trial.value
    assert summary["checkpoint_metrics"]["val_mel_postnet_l1"] == pytest.approx(trial.value, abs=1e-5)
    assert summary["checkpoint_metrics"]["fr_mcd"] > 0


def test_a_complete_trials_checkpoint_is_in_mlflow_exported_and_registered_from_there(
        study_run: StudyRun, tmp_path: Path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    from trainer.model.checkpoint import load_checkpoint
    from trainer.synthesis.infer import load_model

    client = MlflowClient(f"sqlite:///{study_run.home}/mlflow.db")
    experiment = client.get_experiment_by_name("e2e")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on the runs table
    done, gated = _study(study_run).trials[:2]
    assert {a.path for a in client.list_artifacts(done.user_attrs["mlflow_run_id"], "checkpoints")} == {
        "checkpoints/best.pt", "checkpoints/config.yaml"}
    assert not client.list_artifacts(gated.user_attrs["mlflow_run_id"], "checkpoints")  # pruned: no model

    # The run folder on another machine: the export comes from MLflow, the inference checkpoint without Adam.
    run_dir = Path(done.user_attrs["run_dir"])
    away = run_dir.with_name(run_dir.name + ".elsewhere")
    run_dir.rename(away)
    try:
        args = ["best", "--home", str(study_run.home), "--export"]
        assert main([*args, str(tmp_path / "local-only"), "--no-mlflow"]) == 2
        assert "is not on this machine and MLflow is off (--no-mlflow)" in capsys.readouterr().err
        export = tmp_path / "from-mlflow"
        assert main([*args, str(export)]) == 0
        assert {"best.pt", "config.yaml", "sample-1.wav", "alignment.png", "best.json"} <= {
            p.name for p in export.iterdir()}
        payload = load_checkpoint(export / "best.pt")
        assert payload["optimizer"] is None and "rng" not in payload
        assert payload["metrics"]["val_mel_postnet_l1"] == done.value
        load_model(export / "best.pt")  # synthesis takes it as it is
        assert json.loads((export / "best.json").read_text())["from"] == "mlflow"
    finally:
        away.rename(run_dir)

    assert main(["best", "--home", str(study_run.home), "--register", "e2e-voice"]) == 0
    assert "registered trial 0 as model 'e2e-voice' version 1" in capsys.readouterr().out
    assert main(["best", "--home", str(study_run.home), "--register", "e2e-voice"]) == 0
    assert "version 2" in capsys.readouterr().out
    version = client.get_model_version("e2e-voice", "1")
    assert version.run_id == done.user_attrs["mlflow_run_id"] and version.source.endswith("/checkpoints")
    assert version.tags["smart_tuner.trial"] == "0"


def test_dashboard_serves_the_study_over_http(study_run: StudyRun, free_port) -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tuner.cli", "dashboard", "--home", str(study_run.home),
                                "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, studies = time.monotonic() + 90, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
                    studies = json.loads(response.read())
                break
            except OSError:
                time.sleep(0.5)
        assert studies is not None, process.stdout.read() if process.poll() is not None else "no answer"
        entry = next(s for s in studies["study_summaries"] if s["study_name"] == "e2e")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{entry['study_id']}", timeout=30) as response:
            detail = json.loads(response.read())
        trials = detail["trials"]
        assert [t["state"] for t in trials] == ["Complete", "Pruned"]
        # Each trial's note says in words what decided it.
        assert trials[0]["note"]["body"].startswith("## Trial 0: complete")
        assert "**val_mel_postnet_l1" in trials[0]["note"]["body"]
        assert "Stopped: **completed** at step 8" in trials[0]["note"]["body"]
        assert "Stopped: **gated** at step 4: quality gate: tf_diagonality" in trials[1]["note"]["body"]
        assert any(a["filename"] == "sample-1.wav" for a in trials[0]["artifacts"])
        artifact = next(a for a in trials[0]["artifacts"] if a["filename"] == "alignment.png")
        url = f"http://127.0.0.1:{port}/artifacts/{entry['study_id']}/{trials[0]['trial_id']}/{artifact['artifact_id']}"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.read()[:4] == b"\x89PNG"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_train_best_continues_the_winner_in_a_copy_tracked_under_the_study(study_run: StudyRun, capsys) -> None:
    from mlflow.tracking import MlflowClient

    from trainer.model.checkpoint import load_checkpoint

    trial_dir = Path(_study(study_run).best_trial.user_attrs["run_dir"])
    trial_last = (trial_dir / "checkpoints" / "last.pt").read_bytes()
    args = ["train-best", "--home", str(study_run.home), "--quiet"]
    assert main([*args, "--trial", "1"]) == 2  # pruned: not a complete trial
    assert "--trial 1: not a complete trial of study 'e2e' (complete: 0)" in capsys.readouterr().err
    assert main([*args, "--steps", "12"]) == 0
    out = study_run.home / "runs" / "e2e" / "best-trial-0000"
    assert f"trained trial 0's configuration from step 8 to 12 in {out}" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoints" / "last.pt")["position"]["step"] == 12
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [4, 8, 12]  # the trial's history, then more
    assert (trial_dir / "checkpoints" / "last.pt").read_bytes() == trial_last  # the study's evidence untouched
    assert not (out / "job.json").exists()

    client = MlflowClient(f"sqlite:///{study_run.home}/mlflow.db")
    experiment = client.get_experiment_by_name("e2e")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("smart_tuner.role") == "study")
    long_run = next(r for r in runs if r.data.tags.get("smart_tuner.role") == "train-best")
    assert long_run.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert long_run.data.tags["smart_tuner.trial"] == "0" and long_run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(long_run.info.run_id, "fr_mcd")] == [12]
    assert {a.path for a in client.list_artifacts(long_run.info.run_id, "checkpoints")} == {
        "checkpoints/best.pt", "checkpoints/config.yaml"}

    assert main([*args, "--steps", "12"]) == 2  # nothing left to train: said, not silently redone
    assert f"{out} is at step 12 already; ask for more with --steps N (N > 12)" in capsys.readouterr().err


def test_resume_adds_trials_without_repeating_finished_ones(study_run: StudyRun, short_corpus: Path, capsys) -> None:
    """Runs last: it changes the study."""
    before = {t.number: (t.state, t.values, t.datetime_complete) for t in _study(study_run).trials}
    args = ["run-study", "--space", str(study_run.space), "--data", str(short_corpus), "--home", str(study_run.home),
            "--no-mlflow", "--quiet"]
    assert main([*args, "--trials", "2"]) == 0  # the target is already reached: nothing runs
    assert len(_study(study_run).trials) == 2
    assert main([*args, "--trials", "3", "--max-steps", "4"]) == 0
    after = _study(study_run).trials
    assert len(after) == 3
    assert {t.number: (t.state, t.values, t.datetime_complete) for t in after[:2]} == before
    assert after[2].state.is_finished() and after[2].number == 2
