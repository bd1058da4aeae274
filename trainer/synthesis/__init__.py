"""Synthesis: a checkpoint to speech (free-running decoding, the enhancer, vocoders), mels for vocoders."""
