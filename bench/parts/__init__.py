"""Parts of a bench too large for one module, one module per job, named after the bench they belong to.

``study_value_arms``: bench/study_value.py's studies, one per pruner (their spaces, processes, trial records
and the pruners' verdict); ``study_value_heldout``: retraining a configuration with fresh seeds and scoring
its best checkpoint on sentences no trial saw (and the verdict on the winner).
"""
