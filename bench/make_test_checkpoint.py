"""Shrink a trained checkpoint into the small aligned model the tests ship (tests/data/tiny-aligned.pt).

Keeps the weights (as float16: half the size, cast back on load), the config and the
symbol set; drops the optimiser, RNG and position. Regenerate after a model change:

    trainer make-corpus --out /tmp/en300 --utterances 300
    trainer train --data /tmp/en300 --out /tmp/base --preset tiny --max-steps 400
    python bench/make_test_checkpoint.py /tmp/base/checkpoints/best.pt tests/data/tiny-aligned.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainer.config import config_from_stored
from trainer.model.architectures import build_model
from trainer.model.checkpoint import load_checkpoint, save_checkpoint


def shrink(source: Path, target: Path) -> int:
    """Write ``target``: ``source``'s model in float16 with its config; return the training step it came from."""
    payload = load_checkpoint(source)
    config = config_from_stored(payload["config"], source=str(source))
    model = build_model(config)
    model.load_state_dict(payload["model"])
    model.half()
    step = int(payload["position"]["step"])
    save_checkpoint(target, model=model, optimizer=None, config=config.to_dict(),
                    position={"step": step, "epoch": 0, "batch": 0},
                    schedule={"frames_per_char": float(payload["schedule"]["frames_per_char"])},
                    metrics=payload.get("metrics"))
    return step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="trained checkpoint, e.g. RUN/checkpoints/best.pt")
    parser.add_argument("target", type=Path, help="where to write the small checkpoint")
    args = parser.parse_args()
    step = shrink(args.source, args.target)
    print(f"wrote {args.target}: {args.target.stat().st_size / 1e6:.1f} MB from step {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
