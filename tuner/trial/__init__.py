"""One trial: the parent-child protocol, the parent's runner, the child, its reports, media and resume."""
