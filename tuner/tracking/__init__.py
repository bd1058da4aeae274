"""MLflow runs of a study and its trials, and the Optuna artifacts the dashboard shows."""
