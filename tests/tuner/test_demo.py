"""The embedded demo: with no --data and no base checkpoint, a fine-tuning space runs on a demo base
checkpoint and a second-voice corpus, built once under the home and reused."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from tuner.commands.demo import DemoPlan, demo_assets, ensure_demo
from tuner.commands.run_study import StudyRequest, run_study
from tuner.paths import Home


def _mini_plan(text_file: Path) -> DemoPlan:
    # A miniature of the README's demo: same steps, sizes cut so the test runs in seconds.
    return DemoPlan(base_utterances=14, voice_utterances=12, base_steps=4, text_file=str(text_file),
                    base_overrides={"val_size": 4, "batch_size": 6, "val_interval": 4, "warmup_steps": 0,
                                    "torch_threads": 1, "fr_asr": "off"})


def test_demo_study_fine_tunes_the_cached_base_on_a_second_voice(tuner_home: Path, short_text: Path) -> None:
    from optuna.trial import TrialState

    from trainer.corpora.make import SECOND_VOICES

    plan = _mini_plan(short_text)
    request = StudyRequest(space="default.yaml", trials=1, max_steps=2, mlflow=False, demo_plan=plan)
    first = io.StringIO()
    with contextlib.redirect_stdout(first):
        assert run_study(request) == 0
    assets = demo_assets(Home.resolve(), plan)
    assert assets.root.parent == tuner_home / "demo"
    assert assets.base_checkpoint.is_file()
    assert len((assets.voice_corpus / "metadata.csv").read_text().splitlines()) == 12
    assert "training the base checkpoint from scratch" in first.getvalue()
    assert SECOND_VOICES["en"] in first.getvalue()

    import optuna

    study = optuna.load_study(study_name="default", storage=f"sqlite:///{tuner_home}/optuna.db")
    (trial,) = study.trials
    assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED), trial.user_attrs
    assert trial.params == {"learning_rate": 1e-5, "warmup_steps": 50, "dropout": 0.1, "ga_weight": 2.5,
                            "ga_sigma_start": 0.4}
    # 12 utterances cannot hold out the space's 32: a quarter is held out (3 sentences).
    assert "the trials hold out 3" in first.getvalue()
    records = [json.loads(line) for line in Path(trial.user_attrs["run_dir"], "metrics.jsonl").read_text().splitlines()]
    warm = [r for r in records if r.get("event") == "warm_start"]
    assert warm and "warm start: loaded all" in warm[0]["detail"]  # every tensor of the base was used
    job = json.loads(Path(trial.user_attrs["run_dir"], "job.json").read_text())
    settings = job["settings"]
    assert settings["warm_start"] == str(assets.base_checkpoint) and settings["data"] == str(assets.voice_corpus)

    # The second run reuses the demo: no corpus synthesis, no base training (and, its target of
    # one trial being met, runs no trial).
    stamp = assets.base_checkpoint.stat().st_mtime_ns
    second = io.StringIO()
    with contextlib.redirect_stdout(second):
        assert run_study(StudyRequest(space="default.yaml", trials=1, max_steps=2, mlflow=False, demo_plan=plan)) == 0
    assert "demo: base checkpoint" in second.getvalue()
    assert "training the base" not in second.getvalue() and "synthesising" not in second.getvalue()
    assert assets.base_checkpoint.stat().st_mtime_ns == stamp
    assert len(study.trials) == 1


def test_demo_corpus_only_for_a_from_scratch_space(tuner_home: Path, short_text: Path) -> None:
    plan = _mini_plan(short_text)
    lines: list[str] = []
    assets = ensure_demo(Home.resolve(), plan, need_base=False, say=lines.append, show_progress=False)
    assert (assets.base_corpus / "metadata.csv").is_file()
    assert not assets.base_run.exists() and not assets.voice_corpus.exists()
    assert not list(assets.root.parent.glob(".*.tmp-*"))


def test_a_demo_built_for_another_network_is_not_reused(monkeypatch) -> None:
    # A demo base cached before the tiny preset changed shape or frontend no longer fits the trials: new key.
    import tuner.commands.demo
    from trainer.config import preset

    plan = DemoPlan()
    before = plan.key()
    assert DemoPlan().key() == before  # same plan, same network: the cache is found again
    monkeypatch.setattr(tuner.commands.demo, "preset", lambda name: preset(name).replace(text_frontend="characters"))
    assert plan.key() != before and plan.key().startswith("en-")
