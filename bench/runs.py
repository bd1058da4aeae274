"""What the bench scripts imported from here, now in bench/harness/ (training runs, corpora, spreads).

Kept while the scripts move to the harness's runner; nothing is defined here.
"""

from __future__ import annotations

from harness.common import ROOT, ensure_corpus  # noqa: F401
from harness.stats import spread  # noqa: F401
from harness.training import (  # noqa: F401
    ABLATIONS,
    BASELINE,
    CONSTANT_LR,
    FIXED_GATE,
    FULL_TEACHER_FORCING,
    PLAIN_MSE,
    PUBLISHED_DROPOUT,
    TARGET,
    WARMUP_STEPS,
    RunSpec,
    all_fixes_config,
    execute,
    first_step,
    frames_per_second,
    run_all,
    summarise,
    text_frontend_of,
    timed_steps,
)
