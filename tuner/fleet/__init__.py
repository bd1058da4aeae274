"""Many workers on one study: the worker loop, trial leases and their timeouts, GPU claims, the audit."""
