"""The data pipeline: corpus readers and checks, the feature cache, bucketed batches."""
