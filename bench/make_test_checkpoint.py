"""Shrink a trained checkpoint into the small aligned model the tests ship (tests/data/tiny-aligned.pt).

Keeps the weights (as float16: half the size, cast back on load), the config and the
symbol set; drops the optimiser, RNG and position. Regenerate after a model change:

    trainer make-corpus --out /tmp/en300 --utterances 300
    trainer train --data /tmp/en300 --out /tmp/base --preset tiny --max-steps 400
    python bench/make_test_checkpoint.py /tmp/base/checkpoints/best.pt tests/data/tiny-aligned.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainer.checkpoint import load_checkpoint, save_checkpoint
from trainer.config import config_from_dict
from trainer.model import Tacotron2


def main(source: str, target: str) -> int:
    payload = load_checkpoint(source)
    config = config_from_dict(payload["config"], source=source)
    model = Tacotron2(config)
    model.load_state_dict(payload["model"])
    model.half()
    save_checkpoint(Path(target), model=model, optimizer=None, config=payload["config"],
                    position={"step": payload["position"]["step"], "epoch": 0, "batch": 0},
                    schedule={"frames_per_char": float(payload["schedule"]["frames_per_char"])},
                    metrics=payload.get("metrics"))
    print(f"wrote {target}: {Path(target).stat().st_size / 1e6:.1f} MB from step {payload['position']['step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
