"""The per-trial step budget: the space's, --max-steps, the epoch planner's, and the CPU demo's cap."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.training.plan import plan_training
from tuner.commands.run_study import DEMO_CPU_STEPS, DEMO_CPU_TRIALS, StudyRequest, make_plan
from tuner.space.load import SPACES_DIR


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
    asked = make_plan(StudyRequest(space="default.yaml", home=tmp_path / "h", trials=9, max_steps=50))
    assert (asked.n_trials, asked.max_steps) == (9, 50)
    assert not (tmp_path / "h" / "optuna.db").exists()  # planning writes nothing
