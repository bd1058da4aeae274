"""Search-space files: their types, their validation, and samplers and pruners by name."""
