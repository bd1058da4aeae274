"""The named presets: what each changes relative to TrainConfig's defaults (the published sizes).

A leaf module (no torch, no config), so command lines can offer the names without importing
the trainer; ``trainer.config.preset`` turns a name into a checked TrainConfig.
"""

from __future__ import annotations

from typing import Any

# Small enough to align on 2 CPU cores in minutes; schedules shortened to match runs of a few
# hundred steps (a 2000-step warm-up would outlast them).
_TINY: dict[str, Any] = {
    "symbols_embedding_dim": 128,
    "encoder_embedding_dim": 128,
    "encoder_kernel_size": 5,
    "attention_rnn_dim": 256,
    "attention_dim": 64,
    "attention_location_n_filters": 16,
    "attention_location_kernel_size": 15,
    "prenet_dim": 128,
    "decoder_rnn_dim": 256,
    "postnet_embedding_dim": 128,
    "reduction_factor": 2,
    "max_decoder_steps": 400,
    "batch_size": 16,
    "grad_accum_steps": 1,
    "warmup_steps": 50,
    "lr_restart_period": 2000,
    "ga_sigma_anneal_steps": 1000,
    "tf_hold_steps": 300,
    "tf_decay_steps": 2000,
    "max_steps": 600,
    "val_interval": 50,
    "checkpoint_interval": 100,
    # One thread: at this size a second one does not pay for itself on the CPU. Each of a decoder
    # step's matrix products takes 0.1-0.3 ms on one core, and an operator split across threads
    # first wakes the others from their passive wait (trainer/__init__.py says why passive). On 2
    # idle cores the two-thread step took 1.3 to 2 times as long as the one-thread step
    # (bench/speedup.py, docs/PERFORMANCE.md); with another process on the cores they tied. On a GPU
    # the decoder's work is not on these threads. torch_threads=0 gives torch's default (one per core).
    "torch_threads": 1,
}

# The tiny preset with embeddings and decoder RNNs twice as wide (7.6 M parameters against 2.0 M),
# tiny's schedules: on the CPU it speaks intelligibly in fewer steps than tiny, at a longer step
# (about the same time), and goes on to a lower word error rate (bench/intelligibility.py). It keeps
# tiny's one thread: two measured no faster on 2 cores (2.37-2.53 s a step against 2.53-2.55 s).
_SMALL: dict[str, Any] = {
    **_TINY,
    "symbols_embedding_dim": 256,
    "encoder_embedding_dim": 256,
    "attention_rnn_dim": 512,
    "decoder_rnn_dim": 512,
    "prenet_dim": 256,
    "postnet_embedding_dim": 256,
    # Within the bench's WER goal by step 1,500 on both seeds measured; its teacher-forced loss was
    # lowest near step 2,000 while the word error rate kept falling after.
    "max_steps": 2000,
}

OVERRIDES: dict[str, dict[str, Any]] = {
    "tiny": _TINY,
    "small": _SMALL,
    "base": {},
}
PRESETS = tuple(OVERRIDES)
DEFAULT_PRESET = "tiny"  # what `trainer train` and a search space use when they name no preset

__all__ = ["DEFAULT_PRESET", "OVERRIDES", "PRESETS"]
