"""Every bench script answers --help with its usage and exit code 0, in a fresh process outside the repository.

A bench runs for minutes to hours, so a script that no longer imports after an API change
would otherwise be found only when someone starts it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Modules beside the scripts with no command line of their own (none: what the scripts share lives in the
# packages bench/harness, bench/sections and bench/parts).
HELPERS: set[str] = set()


def is_script(path: Path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name not in HELPERS)


def test_every_bench_module_is_a_script_or_a_known_helper() -> None:
    modules = {p.name for p in BENCH.glob("*.py")}
    assert HELPERS <= modules
    assert {name for name in modules if not is_script(BENCH / name)} == HELPERS
    assert len(SCRIPTS) >= 9


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_answers_help(script: str, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script} "), result.stdout
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # --help writes nothing
