"""Tacotron2 text-to-speech trainer: text + audio in, checkpoints and metrics out. Knows nothing of Optuna."""

__version__ = "0.1.0"
