"""The committed report is what the committed results render: docs/RESULTS.md and the README's block, byte for byte.

``python bench/make_report.py`` writes both from bench/results.jsonl; a change to a section that is not
followed by a regenerated report (or a results entry appended without one) fails here. Run in a fresh
process from another folder, into copies, so the checkout is never written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_make_report_regenerates_the_committed_report_and_readme_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copyfile(ROOT / "README.md", readme)
    out = tmp_path / "RESULTS.md"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "make_report.py"),
                             "--results", str(ROOT / "bench" / "results.jsonl"), "--out", str(out),
                             "--readme", str(readme)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == (ROOT / "docs" / "RESULTS.md").read_bytes(), \
        "docs/RESULTS.md is not what bench/results.jsonl renders: run python bench/make_report.py"
    assert readme.read_bytes() == (ROOT / "README.md").read_bytes(), \
        "the README's results block is not what bench/results.jsonl renders: run python bench/make_report.py"
