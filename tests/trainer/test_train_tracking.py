"""A standalone `trainer train` tracked in MLflow: metrics, validation media, the checkpoint, one run across resumes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.cli import main

MICRO = ["symbols_embedding_dim=32", "encoder_embedding_dim=32", "attention_rnn_dim=64", "attention_dim=16",
         "attention_location_n_filters=4", "prenet_dim=32", "decoder_rnn_dim=64", "postnet_embedding_dim=16",
         "batch_size=4", "val_size=4", "val_interval=2", "checkpoint_interval=2", "log_interval=1",
         "warmup_steps=2", "torch_threads=2", "fr_asr=off", "fr_utterances=2"]


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    sets = [item for key in MICRO for item in ("--set", key)]
    return ["train", str(data), "--out", str(out), "--quiet", *sets, *extra]


def _files(client, run_id: str, path: str = "") -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path or None):
        found |= _files(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_train_is_tracked_and_a_resume_continues_the_same_run(tmp_path: Path, demo_corpus: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    from trainer.model.checkpoint import load_checkpoint

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # set: tracking is on without --mlflow
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "long-run"
    assert main(_args(demo_corpus, out, "--max-steps", "4", "--experiment", "voices")) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("voices")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "long-run" and run.info.status == "FINISHED"
    assert run.data.tags["smart_tuner.run_dir"] == str(out.resolve())
    assert run.data.params["model.attention_dim"] == "16" and run.data.params["val_interval"] == "2"
    run_id = run.info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "fr_mcd")] == [2, 4]
    assert [m.step for m in client.get_metric_history(run_id, "train_total")] == [1, 2, 3, 4]
    files = _files(client, run_id)
    for step in ("step_000002", "step_000004"):
        assert {f"validation/{step}/{name}" for name in ("sample.wav", "alignment_fr.png", "mel.png")} <= files
    assert {"checkpoints/best.pt", "checkpoints/config.yaml", "config/config.yaml"} <= files
    slim = load_checkpoint(client.download_artifacts(run_id, "checkpoints/best.pt", str(tmp_path)))
    assert slim["optimizer"] is None and slim["position"]["step"] in (2, 4)

    assert main(["train", str(demo_corpus), "--out", str(out), "--resume", "--max-steps", "6", "--quiet",
                 "--experiment", "voices"]) == 0
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "fr_mcd")] == [2, 4, 6]  # nothing logged twice
    assert [m.step for m in client.get_metric_history(run_id, "train_total")] == [1, 2, 3, 4, 5, 6]


def test_refused_input_leaves_no_run_and_no_mlflow_means_none(tmp_path: Path, demo_corpus: Path,
                                                             monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(_args(tmp_path / "no-such-corpus", tmp_path / "a", "--max-steps", "2", "--mlflow")) == 2
    assert "no-such-corpus" in capsys.readouterr().err
    client = MlflowClient(uri)  # --mlflow without the variable: MLflow's default database here
    experiment = client.get_experiment_by_name("trainer")
    assert experiment is not None and client.search_runs([experiment.experiment_id]) == []
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert main(_args(demo_corpus, tmp_path / "b", "--max-steps", "2", "--no-mlflow")) == 0
    assert client.search_runs([experiment.experiment_id]) == []
    assert client.get_experiment_by_name("Default") is None or not client.search_runs(
        [client.get_experiment_by_name("Default").experiment_id])
