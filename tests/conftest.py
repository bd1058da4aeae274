"""Shared fixtures: small eSpeak demo corpora made once per test session, and an isolated feature cache."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from trainer.corpora.make import make_corpus


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``gpu`` where no CUDA device is visible."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def isolated_feature_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the feature cache at a session temp folder so tests never touch ~/.cache."""
    folder = tmp_path_factory.mktemp("feature-cache")
    patcher = pytest.MonkeyPatch()
    patcher.setenv("SMART_TUNER_CACHE", str(folder))
    yield folder
    patcher.undo()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Return a function giving a loopback TCP port nothing listens on now (for servers the tests start)."""
    return _free_port


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 24-utterance English eSpeak corpus (LJSpeech layout), made once per session. Read-only."""
    out = tmp_path_factory.mktemp("demo-corpus") / "en"
    make_corpus(out, lang="en", utterances=24, seed=7)
    return out


@pytest.fixture(scope="session")
def flite_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a 12-utterance English corpus spoken by flite's rms voice (read-only); skip without flite."""
    import shutil

    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (Debian/Ubuntu package 'flite')")
    out = tmp_path_factory.mktemp("flite-corpus") / "en"
    make_corpus(out, lang="en", utterances=12, seed=5, engine="flite")
    return out
