"""What the ``tuner`` commands do: run a study, show its status, export and train its best trial, the demo."""
