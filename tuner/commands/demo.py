"""The embedded demo: a base checkpoint and a second-voice corpus, built once and cached.

``tuner run-study --space default.yaml`` with no ``--data`` and no base checkpoint runs the
scenario the default space is written for, on eSpeak NG speech: the tiny preset trained from
scratch on an English corpus (the base), then a study fine-tuning the base on a small corpus of
another voice (``trainer.corpora.make.SECOND_VOICES``). Everything lives under
``<home>/demo/<plan key>/``; each folder is built in a temporary folder and renamed into place,
and each file is written atomically (``trainer.fileio``), so an interrupted build is redone and a
finished one is reused. A lock lets concurrent study processes share one build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainer.config import preset
from trainer.corpora.make import SECOND_VOICES, make_corpus
from trainer.fileio import atomic_write_text, file_lock
from tuner.paths import Home


@dataclass(frozen=True)
class DemoPlan:
    """Sizes of the demo. The defaults are the README's demo; tests use a miniature one.

    ``base_steps`` None means the tiny preset's own ``max_steps``; ``base_overrides`` are
    TrainConfig keys for the base training; ``text_file`` (one sentence a line) replaces the
    sentence generator for both corpora.
    """

    lang: str = "en"
    base_utterances: int = 300
    voice_utterances: int = 120  # the spaces hold out 32 (val_size) for the trials' values
    base_steps: int | None = 300  # the tiny preset aligns (diagonality > 0.9) by about step 150
    seed: int = 11
    text_file: str | None = None
    base_overrides: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        """Return the cache folder name of this plan: ``LANG-<hash>``.

        The hash covers the tiny preset's network too, so a demo cached before a change of the
        preset's shape or text frontend is rebuilt rather than offered to trials it no longer fits.
        """
        text = json.dumps({**asdict(self), "network": asdict(preset("tiny").model)}, sort_keys=True)
        return f"{self.lang}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


@dataclass(frozen=True)
class DemoAssets:
    """Paths of a built demo."""

    root: Path
    base_corpus: Path
    voice_corpus: Path
    base_run: Path

    @property
    def base_checkpoint(self) -> Path:
        """The checkpoint trials warm-start from: the base run's last state."""
        return self.base_run / "checkpoints" / "last.pt"

    def base_summary(self) -> dict[str, Any]:
        """Return the base run's last validation figures (empty when the base is not built)."""
        try:
            return json.loads((self.base_run / "demo_base.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}


def demo_assets(home: Home, plan: DemoPlan) -> DemoAssets:
    """Return where ``plan``'s demo lives in ``home`` (built or not)."""
    root = home.demo / plan.key()
    return DemoAssets(root, root / "base_corpus", root / "voice_corpus", root / "base")


def _build_once(final: Path, build: Callable[[Path], object]) -> None:
    """Build ``final`` through ``build(tmp)`` then rename; nothing when it exists. Call under the lock."""
    if final.exists():
        return
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a build that was killed; we hold the lock
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    build(tmp)
    os.replace(tmp, final)


def ensure_demo(home: Home, plan: DemoPlan | None = None, need_base: bool = True,
                say: Callable[[str], None] = print, show_progress: bool = True) -> DemoAssets:
    """Build (first time) or reuse the demo of ``plan`` and return its paths.

    ``need_base`` False builds only the English base corpus (for from-scratch spaces).
    """
    plan = plan or DemoPlan()
    assets = demo_assets(home, plan)
    text_file = Path(plan.text_file) if plan.text_file else None
    with file_lock(assets.root.parent / f".{plan.key()}.lock"):
        assets.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(assets.root / "plan.json", json.dumps(asdict(plan), indent=1, sort_keys=True) + "\n")
        if not assets.base_corpus.exists():
            say(f"demo: synthesising the English base corpus ({plan.base_utterances} utterances, eSpeak NG)")
        _build_once(assets.base_corpus, lambda tmp: make_corpus(
            tmp, lang=plan.lang, utterances=plan.base_utterances, seed=plan.seed, text_file=text_file))
        if need_base:
            voice = SECOND_VOICES[plan.lang]
            if not assets.voice_corpus.exists():
                say(f"demo: synthesising the second voice's corpus ({voice}, {plan.voice_utterances} utterances)")
            _build_once(assets.voice_corpus, lambda tmp: make_corpus(
                tmp, lang=plan.lang, utterances=plan.voice_utterances, seed=plan.seed + 1, text_file=text_file,
                voice=voice))
            if not assets.base_run.exists():
                _build_once(assets.base_run, lambda tmp: _train_base(tmp, assets.base_corpus, plan, say,
                                                                     show_progress))
            summary = assets.base_summary()
            if summary:
                say(f"demo: base checkpoint {assets.base_checkpoint} (step {summary.get('step')}, "
                    f"diagonality {summary.get('tf_diagonality', float('nan')):.2f}, "
                    f"gate balanced accuracy {summary.get('tf_gate_balanced_accuracy', float('nan')):.2f})")
    return assets


def _train_base(out: Path, corpus: Path, plan: DemoPlan, say: Callable[[str], None], show_progress: bool) -> None:
    """Train the tiny preset from scratch on ``corpus`` into ``out``; record its last validation."""
    # lazy: trainer.training.loop imports matplotlib, which writes a font cache under $HOME when first imported;
    # only this first build of the demo trains, and a refused command must leave no file behind
    from trainer.training.loop import train

    config = preset("tiny")
    overrides = dict(plan.base_overrides)
    if plan.base_steps is not None:
        overrides["max_steps"] = plan.base_steps
    config = config.replace(**overrides)
    say(f"demo: training the base checkpoint from scratch (tiny preset, {config.max_steps} steps; "
        "first run only, then cached)")
    sys.stdout.flush()
    result = train(config, corpus, out, show_progress=show_progress)
    summary = {"step": result.step, **result.last_metrics}
    atomic_write_text(out / "demo_base.json", json.dumps(summary, indent=1, sort_keys=True) + "\n")
    if summary.get("tf_diagonality", 0.0) < 0.5:
        say(f"demo: warning: the base checkpoint aligns poorly (diagonality {summary.get('tf_diagonality', 0):.2f});"
            " fine-tuning trials will show it")
