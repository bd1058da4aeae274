"""Training: the loop, the loss terms, the schedules, the quality controller and the epoch planner."""
