"""The per-trial budget: the space's steps, --max-steps, the epoch planner's, the CPU demo's cap; the held-out size."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.training.plan import plan_training
from tuner.commands.run_study import DEMO_CPU_STEPS, DEMO_CPU_TRIALS, StudyRequest, make_plan
from tuner.space.load import SPACES_DIR

BASE_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "tiny-aligned.pt"


def space_without_budget(tmp_path: Path) -> Path:
    text = (SPACES_DIR / "scratch.yaml").read_text().replace("  max_steps: 600\n", "")
    path = tmp_path / "nobudget.yaml"
    path.write_text(text)
    return path


def test_epoch_planner_sets_the_budget_when_none_is_given(demo_corpus: Path, tmp_path: Path) -> None:
    plan = make_plan(StudyRequest(space=str(space_without_budget(tmp_path)), data=demo_corpus, home=tmp_path / "h"))
    config = plan.space.build_config(plan.space.defaults_or_low())
    expected = plan_training(demo_corpus, config.batch_size, config.grad_accum_steps, val_size=config.val_size)
    assert plan.max_steps == expected.steps > 0
    explicit = make_plan(StudyRequest(space=str(space_without_budget(tmp_path)), data=demo_corpus,
                                      home=tmp_path / "h", max_steps=42))
    assert explicit.max_steps == 42


def test_space_budget_wins_over_the_planner(demo_corpus: Path, tmp_path: Path) -> None:
    plan = make_plan(StudyRequest(space=str(SPACES_DIR / "scratch.yaml"), data=demo_corpus, home=tmp_path / "h"))
    assert plan.max_steps == 600 and plan.n_trials == 30


@pytest.mark.skipif(torch.cuda.is_available(), reason="the cap applies to CPU-only machines")
def test_zero_flag_demo_on_cpu_runs_a_short_study(tmp_path: Path) -> None:
    plan = make_plan(StudyRequest(space="default.yaml", home=tmp_path / "h"))
    assert plan.use_demo
    assert (plan.n_trials, plan.max_steps) == (DEMO_CPU_TRIALS, DEMO_CPU_STEPS)
    assert plan.shortened is not None and "where default.yaml asks for 20 x 1000" in plan.shortened
    assert "not which configuration is best" in plan.shortened  # it says what short trials cannot show
    asked = make_plan(StudyRequest(space="default.yaml", home=tmp_path / "h", trials=9, max_steps=50))
    assert (asked.n_trials, asked.max_steps) == (9, 50)
    assert not (tmp_path / "h" / "optuna.db").exists()  # planning writes nothing


def test_a_corpus_too_small_for_the_space_s_held_out_set_holds_out_a_quarter(demo_corpus: Path,
                                                                             tmp_path: Path) -> None:
    from tuner.commands.run_study import held_out_size
    from tuner.errors import TunerError

    assert [held_out_size(n, 32) for n in (200, 64, 63, 16, 4)] == [None, None, 15, 4, 1]
    assert held_out_size(24, 8) is None  # the shipped tiny spaces' corpora of tests and demos keep their 8
    with pytest.raises(TunerError, match="3 usable utterances, not enough for a validation set"):
        held_out_size(3, 8)
    # The 24-utterance corpus under default.yaml's 32: the trials hold out 6 and are ranked on them.
    from tuner.commands.run_study import _settings

    plan = make_plan(StudyRequest(space="default.yaml", data=demo_corpus, home=tmp_path / "h",
                                  warm_start=BASE_CHECKPOINT))
    said: list[str] = []
    settings = _settings(StudyRequest(space="default.yaml", data=demo_corpus, home=tmp_path / "h",
                                      warm_start=BASE_CHECKPOINT), plan, said.append)
    assert settings.held_out == 6 and any("hold out 6" in line for line in said)
    from tuner.trial.setup import TrialSetup

    assert TrialSetup(plan.space, settings).config(plan.space.defaults()).val_size == 6
