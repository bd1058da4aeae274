"""Training: the loop, the loss terms, the schedules and the quality controller."""
