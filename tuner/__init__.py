"""Optuna + MLflow hyperparameter search around the trainer package."""

__version__ = "0.1.0"
