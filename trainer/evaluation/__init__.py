"""Evaluation: validation, alignment and free-running metrics, the metric registry, intelligibility, plots."""
