"""The acoustic model: its contract, the architectures by name, Tacotron2, masks, when inference stops, checkpoints."""
