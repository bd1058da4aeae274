"""The trainer's quality decisions reach the trial: one readable line per decision that did something."""

from __future__ import annotations

import json
from pathlib import Path

from tuner.trial.observers import quality_decisions


def test_quality_decisions_are_read_from_the_run_log(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    rows = [
        {"kind": "val", "step": 50, "tf_diagonality": 0.4},
        {"kind": "quality", "step": 50, "detection": "misalignment", "action": "raise_guided_attention",
         "reason": "tf_diagonality 0.400 < 0.7 after warm-up; ga_boost 1 -> 2"},
        {"kind": "quality", "step": 100, "detection": "misalignment", "action": "none_cooldown", "reason": "x"},
        {"kind": "quality", "step": 150, "detection": "exploding_loss", "action": "rollback", "reason": "back to 100"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{truncated")
    assert quality_decisions(path) == [
        "step 50: misalignment -> raise_guided_attention (tf_diagonality 0.400 < 0.7 after warm-up; ga_boost 1 -> 2)",
        "step 150: exploding_loss -> rollback (back to 100)",
    ]
    assert quality_decisions(tmp_path / "missing.jsonl") == []
