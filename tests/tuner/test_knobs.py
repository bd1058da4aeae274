"""The tuner owns the knobs it samples: during a trial the trainer's controller never turns a sampled key,
while `trainer train` on the same config still adapts it."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tuner.cli import main

# A rate far too small to align in 12 steps: the controller finds the attention misaligned at every
# validation from step 4 on, and its fix is to raise the guided-attention weight, which the space samples.
SPACE = """\
preset: tiny
study:
  name: knobs
  objective: val_mel_postnet_l1
  max_steps: 12
  sampler: {name: random, seed: 1}
  pruner: {name: none}
  gates: []
  samples: 0
fixed:
  val_interval: 4
  val_size: 4
  batch_size: 6
  warmup_steps: 0
  torch_threads: 1
  fr_asr: "off"
  learning_rate: 1.0e-7
params:
  ga_weight: {type: float, low: 1.0, high: 8.0, default: 2.5}
"""


def _records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
            if r.get("kind") == kind]


def test_a_sampled_key_is_never_turned_during_a_trial_but_trainer_train_still_turns_it(
        tmp_path: Path, tuner_home: Path, short_corpus: Path) -> None:
    import optuna

    from trainer.config import config_from_stored
    from trainer.training.loop import train
    from trainer.yamlio import safe_load

    space = tmp_path / "knobs.yaml"
    space.write_text(SPACE)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run-study", "--space", str(space), "--data", str(short_corpus), "--trials", "1",
                     "--no-mlflow"]) == 0
    (trial,) = optuna.load_study(study_name="knobs", storage=f"sqlite:///{tuner_home}/optuna.db").trials
    run_dir = Path(trial.user_attrs["run_dir"])
    stored = safe_load((run_dir / "config.yaml").read_text())
    assert stored["controller_frozen_keys"] == ["ga_weight"]
    decisions = _records(run_dir, "quality")
    misaligned = [d for d in decisions if d["detection"] == "misalignment"]
    assert misaligned and {d["action"] for d in misaligned} == {"none_left_to_tuner"}
    assert all("ga_weight" in d["reason"] for d in misaligned)
    scheduled = [r["ga_weight"] for r in _records(run_dir, "train")]
    assert max(scheduled) <= 2.5  # never boosted: the decaying schedule's own weight

    # The same config outside the tuner: the controller adapts the weight as it always did.
    alone = config_from_stored({**stored, "controller_frozen_keys": []}, source="test")
    out = tmp_path / "alone"
    train(alone, short_corpus, out, show_progress=False)
    actions = {d["action"] for d in _records(out, "quality") if d["detection"] == "misalignment"}
    assert "raise_guided_attention" in actions
    assert max(r["ga_weight"] for r in _records(out, "train")) > 2.5


@pytest.mark.parametrize("key", ["controller_frozen_keys", "best_metric"])
def test_a_space_cannot_set_what_the_tuner_sets(tmp_path: Path, capsys, key: str) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("fixed:\n", f"fixed:\n  {key}: []\n" if key != "best_metric"
                                   else "fixed:\n  best_metric: fr_mcd\n"))
    assert main(["check-space", str(space)]) == 2
    assert f"fixed.{key}: is set by" in capsys.readouterr().err
