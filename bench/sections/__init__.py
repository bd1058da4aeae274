"""Each bench's record (the fields it appends to bench/results.jsonl) and its section of docs/RESULTS.md.

``sections/<bench>.py`` belongs to ``bench/<bench>.py``: the bench builds the record declared here,
and ``SECTION`` renders it; bench/make_report.py puts the sections in order. ``summary`` is drawn
from the baseline and ablation entries.
"""
