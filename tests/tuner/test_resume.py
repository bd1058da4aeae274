"""A retried trial resumes from its predecessor's newest readable checkpoint, and says which."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch

from trainer.config import preset
from trainer.model.architectures import build_model
from trainer.model.checkpoint import load_checkpoint, save_checkpoint
from tuner.study.optuna_api import storage_of, trial_id
from tuner.trial.resume import prepare_resume

MICRO = dict(symbols_embedding_dim=16, encoder_embedding_dim=16, attention_rnn_dim=16, attention_dim=8,
             attention_location_n_filters=2, attention_location_kernel_size=3, prenet_dim=8, decoder_rnn_dim=16,
             postnet_embedding_dim=8)


def _save(path: Path, step: int) -> None:
    config = preset("tiny").replace(**MICRO)
    model = build_model(config)
    save_checkpoint(path, model=model, optimizer=torch.optim.Adam(model.parameters()), config=config.to_dict(),
                    position={"step": step, "epoch": 0, "batch": step}, schedule={"lr_scale": 1.0})


def test_a_retry_falls_back_past_a_damaged_last_checkpoint(tmp_path: Path) -> None:
    dead_run = tmp_path / "trial-0000"
    (dead_run / "checkpoints").mkdir(parents=True)
    _save(dead_run / "checkpoints" / "step_000004.pt", 4)
    _save(dead_run / "checkpoints" / "good.pt", 2)
    (dead_run / "checkpoints" / "last.pt").write_bytes(b"cut by the kill")
    (dead_run / "metrics.jsonl").write_text('{"kind": "val", "step": 4}\n{"kind": "val", "step": 6}\n')

    study = optuna.create_study()
    dead = study.ask()
    dead.set_user_attr("run_dir", str(dead_run))
    study.tell(dead, state=optuna.trial.TrialState.FAIL)
    retry = study.ask()
    storage_of(study).set_trial_system_attr(trial_id(retry), "retry_history", [dead.number])

    resumed = prepare_resume(study, retry, tmp_path / "trial-0001")
    assert resumed is not None
    assert (resumed.trial, resumed.step, resumed.checkpoint) == (0, 4, "step_000004.pt")
    assert len(resumed.skipped) == 1 and "last.pt: not a readable checkpoint" in resumed.skipped[0]
    copied = tmp_path / "trial-0001"
    assert load_checkpoint(copied / "checkpoints" / "last.pt")["position"]["step"] == 4  # the child resumes it
    assert (copied / "metrics.jsonl").read_text() == '{"kind": "val", "step": 4}\n'  # nothing after step 4
    assert resumed.as_attr()["checkpoint"] == "step_000004.pt"


def test_a_retry_of_a_trial_without_a_readable_checkpoint_starts_over(tmp_path: Path) -> None:
    dead_run = tmp_path / "trial-0000"
    (dead_run / "checkpoints").mkdir(parents=True)
    (dead_run / "checkpoints" / "last.pt").write_bytes(b"garbage")
    study = optuna.create_study()
    dead = study.ask()
    dead.set_user_attr("run_dir", str(dead_run))
    study.tell(dead, state=optuna.trial.TrialState.FAIL)
    retry = study.ask()
    storage_of(study).set_trial_system_attr(trial_id(retry), "retry_history", [dead.number])
    assert prepare_resume(study, retry, tmp_path / "trial-0001") is None
