"""A seeded sampler: workers sharing a study draw distinct values, and a replay draws the same ones."""

from __future__ import annotations

import optuna
import pytest

from tuner.space.samplers import make_sampler


def _two_workers(samplers: list[optuna.samplers.BaseSampler], trials: int = 8) -> dict[int, tuple[float, float]]:
    """Two worker processes' study handles on one storage, asking in turn; return {trial number: params}."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.InMemoryStorage()
    studies = [optuna.create_study(storage=storage, study_name="s", sampler=samplers[0]),
               optuna.load_study(storage=storage, study_name="s", sampler=samplers[1])]
    drawn = {}
    for i in range(trials):
        study = studies[i % 2]
        trial = study.ask()
        params = (trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("lr", 1e-5, 1e-2, log=True))
        study.tell(trial, params[0])
        drawn[trial.number] = params
    return drawn


def test_one_seed_in_every_worker_made_them_repeat_each_other() -> None:
    # What a seeded Optuna sampler does when every worker builds it with the space's seed.
    drawn = _two_workers([optuna.samplers.RandomSampler(seed=1), optuna.samplers.RandomSampler(seed=1)])
    assert drawn[0] == drawn[1] and drawn[2] == drawn[3]


@pytest.mark.parametrize("section", [{"name": "random", "seed": 1}, {"name": "tpe", "seed": 1},
                                     {"name": "tpe", "seed": 1, "multivariate": True, "constant_liar": True}])
def test_workers_draw_distinct_values_and_a_replay_draws_the_same(section: dict) -> None:
    drawn = _two_workers([make_sampler(section), make_sampler(section)])
    assert len(set(drawn.values())) == len(drawn)  # no two trials share their parameters
    assert _two_workers([make_sampler(section), make_sampler(section)]) == drawn  # seeded: reproducible
    other = _two_workers([make_sampler({**section, "seed": 2}), make_sampler({**section, "seed": 2})])
    assert set(other.values()).isdisjoint(drawn.values())


def test_an_unseeded_sampler_is_optunas_own() -> None:
    assert type(make_sampler({"name": "random"})) is optuna.samplers.RandomSampler
    assert type(make_sampler({"name": "qmc", "seed": 3})) is optuna.samplers.QMCSampler


def test_the_audit_names_trials_that_repeat_another_ones_draw() -> None:
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState, create_trial

    from tuner.fleet.audit import audit_trials

    def made(number: int, x: float, history: list[int] | None = None) -> optuna.trial.FrozenTrial:
        trial = create_trial(state=TrialState.COMPLETE, value=x, params={"x": x},
                             distributions={"x": FloatDistribution(0, 1)},
                             system_attrs={"retry_history": history} if history else None)
        trial.number = number
        return trial

    retried = [made(0, 0.5), made(1, 0.25), made(2, 0.5, history=[0])]  # trial 2 resumes trial 0: its parameters
    assert audit_trials(retried, workers_gone=False).duplicate_params == []
    repeated = audit_trials([*retried, made(3, 0.25)], workers_gone=False)
    assert repeated.duplicate_params == ["trial 3 drew the same parameters as trial 1: {'x': 0.25}"]
    assert repeated.as_dict()["duplicate_params"] == 1
