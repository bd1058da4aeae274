"""Tacotron2 text-to-speech trainer: text + audio in, checkpoints and metrics out. Knows nothing of Optuna."""

import os

# The decoder runs thousands of tiny ops per step. With libgomp's default active waiting,
# OpenMP threads spin between ops and, on a small machine shared with any other process,
# a step slows down by 5-10x (measured on 2 cores). Passive waiting has its own price when
# the run has the machine to itself: the tiny preset's two-thread step took 1.16 s with it
# against 0.66 s with OMP_WAIT_POLICY=ACTIVE (2 idle cores). Passive is the safe default for
# shared machines and tuner workers; a lone run on idle cores may set ACTIVE. The tiny and small
# presets sidestep both by training on one thread (trainer/presets.py). It must be set before
# torch loads OpenMP, hence here; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``trainer.train`` is the training entry point (``trainer.training.loop.train``), imported on first use.

    Lazily, so that ``import trainer.errors`` (the tuner's command line does it) does not load torch.
    """
    if name == "train":
        from trainer.training.loop import train  # lazy: torch, see the docstring

        return train
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
