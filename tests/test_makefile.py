"""The Makefile's set-up and its two commands, as make itself plans them (``make -n``: print, run nothing).

``make test`` and ``make demo`` create the environment and install the project when it is missing
or older than pyproject.toml, and otherwise only run their command. CI (.ci/run) does not use make.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def plan(target: str, venv: Path, *variables: str) -> list[str]:
    """Return the shell lines ``make TARGET`` would run with the environment ``venv``."""
    result = subprocess.run(["make", "-n", target, f"VENV={venv}", *variables], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def test_first_use_creates_the_environment_and_installs_the_project(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    setup = [f"test -x {venv}/bin/python || {{ python3 -m venv {venv} && {venv}/bin/python -m pip install --quiet "
             "--upgrade pip; }",
             f"{venv}/bin/python -m pip install -e '.[test]'",
             f"touch {venv}/.smart-tuner-installed"]
    assert plan("test", venv) == [*setup, f"{venv}/bin/python -m pytest -q"]
    assert plan("demo", venv) == [*setup, f"{venv}/bin/tuner run-study --space default.yaml"]
    assert not venv.exists()  # -n ran nothing


def test_later_uses_only_run_the_command_until_pyproject_changes(tmp_path: Path) -> None:
    venv = tmp_path / ".venv"
    venv.mkdir()
    stamp = venv / ".smart-tuner-installed"
    stamp.touch()
    newer = (ROOT / "pyproject.toml").stat().st_mtime + 60
    os.utime(stamp, (newer, newer))
    assert plan("test", venv) == [f"{venv}/bin/python -m pytest -q"]
    assert plan("test", venv, "ARGS=-k space") == [f"{venv}/bin/python -m pytest -q -k space"]
    assert plan("demo", venv, "ARGS=--trials 2") == [f"{venv}/bin/tuner run-study --space default.yaml --trials 2"]
    older = newer - 3600
    os.utime(stamp, (older, older))  # pyproject.toml changed since the install: install again
    assert plan("test", venv)[1] == f"{venv}/bin/python -m pip install -e '.[test]'"


def test_ci_does_not_depend_on_make() -> None:
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^\s*make\b", script, re.M) is None
    assert "python3 -m venv .ci-venv" in script and "python -m pytest -q" in script
