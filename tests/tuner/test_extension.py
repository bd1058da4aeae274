"""Extending the tuner without touching it: a new search-space parameter needs only the YAML, and a new
metric registered in ``trainer.evaluation.metric_registry`` can be gated on and shows in the live view and status."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from trainer.config import config_from_dict
from trainer.evaluation import metric_registry
from trainer.evaluation.metric_registry import Metric
from trainer.model.checkpoint import load_checkpoint
from tuner.cli import main
from tuner.commands.status import trials_table
from tuner.space.load import load_space
from tuner.space.spec import Gate, Objective
from tuner.study.optuna_api import storage_of, trial_id
from tuner.trial.observers import LiveView
from tuner.trial.reporting import Reporter, TrialHandle

# ------------------------------------------------------------------ a new parameter: only the YAML

NEW_KEY = "attention_dim"  # a TrainConfig (model) key that no shipped space searches


def test_no_shipped_space_searches_the_new_key() -> None:
    for name in ("default", "scratch"):
        space = load_space(name)
        assert all(NEW_KEY not in p.targets for p in space.params) and NEW_KEY not in space.fixed


def test_a_new_parameter_needs_only_the_space_file(tmp_path: Path, capsys, tuner_home: Path, short_corpus: Path,
                                                    fast_space_writer) -> None:
    space_path = fast_space_writer(tmp_path, study="newkey", max_steps=4, samples=0, gates="[]",
                                   params=f"  {NEW_KEY}: {{type: int, low: 32, high: 48, step: 16, default: 48}}\n")
    # check-space accepts and describes it ...
    assert main(["check-space", str(space_path)]) == 0
    assert f"{NEW_KEY}: int 32..48 step 16 (default 48)" in capsys.readouterr().out
    # ... a trial's config carries it ...
    space = load_space(space_path)
    assert space.build_config({NEW_KEY: 32}).model.attention_dim == 32
    assert space.build_config(space.defaults()).model.attention_dim == 48
    # ... and a real (miniature) trial trains with it: the enqueued defaults, attention_dim 48.
    assert main(["run-study", "--space", str(space_path), "--data", str(short_corpus), "--trials", "1",
                 "--no-mlflow", "--quiet"]) == 0
    (trial,) = optuna.load_study(study_name="newkey", storage=f"sqlite:///{tuner_home}/optuna.db").trials
    assert trial.state == TrialState.COMPLETE, trial.user_attrs
    assert trial.params == {NEW_KEY: 48}
    saved = load_checkpoint(Path(trial.user_attrs["run_dir"]) / "checkpoints" / "last.pt")["config"]
    assert config_from_dict(saved).model.attention_dim == 48


# ------------------------------------------------------------------ a new metric: only the registry


@pytest.fixture()
def toy_metric() -> Iterator[Metric]:
    metric = metric_registry.register(Metric("toy_score", "maximize", "a metric a test declares", low=0.0, high=1.0,
                                             label="toy"))
    try:
        yield metric
    finally:
        metric_registry.unregister(metric.name)


def _toy_space(folder: Path, gate: str) -> Path:
    path = folder / "toy.yaml"
    path.write_text("preset: tiny\nstudy:\n  name: toy\n  objective: toy_score\n  gates:\n"
                    f"    - {gate}\nparams:\n  ga_weight: {{low: 1.0, high: 2.0}}\n", encoding="utf-8")
    return path


def test_a_registered_metric_can_be_an_objective_and_a_gate(toy_metric: Metric, tmp_path: Path, capsys) -> None:
    path = _toy_space(tmp_path, "{metric: toy_score, min: 0.5, after_step: 10}")
    assert main(["check-space", str(path)]) == 0
    out = capsys.readouterr().out
    assert "gate: toy_score >= 0.5 from step 10" in out
    assert "maximize toy_score" in out  # the direction declared in the registry
    # Its declared range bounds the gate.
    bad = _toy_space(tmp_path, "{metric: toy_score, min: 1.5}")
    assert main(["check-space", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"tuner: error: {bad}:6: study.gates.0.min: 1.5 is above the highest value toy_score takes (1)"


def test_an_unregistered_metric_is_unknown_again(tmp_path: Path, capsys) -> None:
    assert not metric_registry.is_known("toy_score")
    path = _toy_space(tmp_path, "{metric: toy_score, min: 0.5}")
    assert main(["check-space", str(path)]) == 2
    assert f"{path}:4: study.objective: unknown metric 'toy_score'" in capsys.readouterr().err


def test_a_registered_metric_is_gated_and_shown(toy_metric: Metric) -> None:
    study = optuna.create_study(direction="maximize")
    handle = TrialHandle(study, storage_of(study), trial_id(study.ask()))
    reporter = Reporter(handle, Objective(("toy_score",), ("maximize",)),
                        (Gate("toy_score", min=0.5, after_step=10),), max_steps=20)
    record = {"kind": "val", "step": 10, "tf_diagonality": 0.61, "val_mel_postnet_l1": 1.25, "toy_score": 0.25}
    metrics = {k: v for k, v in record.items() if k != "kind"}
    assert reporter(10, metrics) is True
    assert reporter.stop.text().startswith("quality gate: toy_score 0.250 < 0.5 at step 10")
    # The live view: every labelled metric the record holds, under its label, in registry order.
    stream = io.StringIO()
    LiveView(study, stream=stream).validation(0, 10, 20, record)
    assert stream.getvalue().strip() == "trial 0 step 10/20: diag 0.610  mel_l1 1.250  toy 0.250"
    # The status table: a column for it, from the trial's last metrics.
    header = trials_table(study).splitlines()[0].split()
    assert header[:4] == ["#", "state", "value", "step"] and "toy" in header and "diag" in header
