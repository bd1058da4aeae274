"""The acoustic model: its contract, the architectures by name, Tacotron2, checkpoints."""
