"""The distribution as users install it: a wheel, and an editable install, each in a fresh virtual environment.

The search spaces ship as package data (``tuner.search_spaces``, mapped onto the repository's
top-level ``search_spaces/``), so a bare space name resolves from any folder. The new
environments take the dependencies (torch and the rest, gigabytes) from the environment running
the tests through a ``.pth`` line instead of installing them again; only smart-tuner itself is
installed there, from a private copy of the sources (building writes ``build/`` and
``*.egg-info`` into the tree it builds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tuner.space.load import SPACES_DIR, load_space, resolve_space_path, shipped_spaces

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "README.md", "trainer", "tuner", "search_spaces")
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"), re.M)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a copy of what the distribution is built from (no caches, no tests, no bench)."""
    copy = tmp_path_factory.mktemp("sources") / "smart-tuner"
    copy.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, copy / name)
    return copy


def _fresh_venv(folder: Path) -> Path:
    """Make a virtual environment whose dependencies come from this one; return its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A .pth line appends this environment's site-packages after the new one's: the new
    # environment's own smart-tuner (installed below) comes first; pip runs from here too.
    (Path(purelib) / "_smart_tuner_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _pip_install(python: Path, *args: str) -> None:
    # --ignore-installed: pip sees this environment's smart-tuner through the .pth line and must
    # neither skip the install nor uninstall that one; --no-deps: the dependencies are there.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed",
                    "--no-build-isolation", *args], check=True, capture_output=True, text=True, timeout=300)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SMART_TUNER_HOME", "SMART_TUNER_STORAGE", "OPTUNA_STORAGE",
                        "MLFLOW_TRACKING_URI", "SMART_TUNER_FAULT", "VIRTUAL_ENV")}
    return {**env, **extra}


def _run(args: list[str | Path], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env=_clean_env(**env))


def test_a_wheel_ships_the_spaces_and_runs_a_study_from_any_folder(tmp_path: Path, sources: Path, short_corpus: Path,
                                                                   fast_space_writer) -> None:
    assert VERSION is not None
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(dist), str(sources)], check=True, capture_output=True, text=True, timeout=300)
    wheel = next(dist.glob("smart_tuner-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"tuner/search_spaces/default.yaml", "tuner/search_spaces/scratch.yaml",
            "tuner/search_spaces/README.md", "tuner/search_spaces/__init__.py"} <= names
    assert not any(n.startswith(("tests/", "bench/", "search_spaces/")) for n in names)

    venv = tmp_path / "venv"
    python = _fresh_venv(venv)
    _pip_install(python, str(wheel))
    elsewhere = tmp_path / "elsewhere"  # neither the checkout nor the environment
    elsewhere.mkdir()
    site = _run([python, "-c", "import importlib.metadata as m, tuner, trainer; "
                               "print(tuner.__file__); print(trainer.__file__); print(m.version('smart-tuner'))"],
                elsewhere)
    tuner_file, trainer_file, version = site.stdout.split()
    assert Path(tuner_file).is_relative_to(venv) and Path(trainer_file).is_relative_to(venv), site.stdout
    assert version == VERSION.group(1)

    for program in ("tuner", "trainer"):
        shown = _run([venv / "bin" / program, "--version"], elsewhere)
        assert shown.returncode == 0 and shown.stdout.strip() == f"{program} {VERSION.group(1)}", shown

    checked = _run([venv / "bin" / "tuner", "check-space", "default"], elsewhere)
    assert checked.returncode == 0, checked.stderr
    first = checked.stdout.splitlines()[0]
    assert first.endswith("tuner/search_spaces/default.yaml: ok") and first.startswith(str(venv)), first

    # A one-trial miniature study, run by the wheel's console script; its trial runs in a child
    # process of the same environment.
    space = fast_space_writer(tmp_path, study="wheel", max_steps=4, gates="[]", samples=1)
    home = tmp_path / "home"
    study = _run([venv / "bin" / "tuner", "run-study", "--space", space, "--data", short_corpus, "--home", home,
                  "--trials", "1", "--no-mlflow"], elsewhere, timeout=600)
    assert study.returncode == 0, study.stdout[-3000:] + study.stderr[-3000:]
    status = _run([venv / "bin" / "tuner", "status", "--home", home, "--format", "json"], elsewhere)
    assert status.returncode == 0, status.stderr
    trials = json.loads(status.stdout)
    assert [t["state"] for t in trials] == ["COMPLETE"], trials
    assert Path(trials[0]["user_attrs"]["run_dir"]).is_relative_to(home)
    assert list(elsewhere.iterdir()) == []  # nothing landed in the working folder


def test_an_editable_install_finds_the_spaces_in_the_source_tree(tmp_path: Path, sources: Path) -> None:
    python = _fresh_venv(tmp_path / "venv")
    _pip_install(python, "--editable", str(sources))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    found = _run([python, "-c", "import tuner.space.load as s; print(s.spaces_dir())"], elsewhere)
    assert found.returncode == 0 and Path(found.stdout.strip()) == sources / "search_spaces", found
    checked = _run([tmp_path / "venv" / "bin" / "tuner", "check-space", "default.yaml"], elsewhere)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith(f"{sources / 'search_spaces' / 'default.yaml'}: ok")


def test_a_bare_name_is_a_shipped_space_and_an_existing_path_wins(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert shipped_spaces() == ["default", "scratch"]
    monkeypatch.chdir(tmp_path)
    for name in ("default", "default.yaml"):
        assert resolve_space_path(name) == SPACES_DIR / "default.yaml"
    # A file of the same name in the working folder is the user's own space: it wins.
    local = tmp_path / "default.yaml"
    local.write_text((SPACES_DIR / "scratch.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert resolve_space_path("default.yaml") == Path("default.yaml")
    assert not load_space("default.yaml").study.fine_tune  # the local copy of scratch.yaml, not the shipped space
    assert load_space("default").study.fine_tune  # no file named `default` here: the shipped one


def test_an_unknown_bare_name_lists_the_shipped_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.errors import SpaceError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpaceError, match=r"^defualt: search-space file not found .*shipped space: default, scratch"):
        load_space("defualt")
