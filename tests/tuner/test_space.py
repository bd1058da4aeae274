"""Search-space files: the documented spaces, the mapping onto TrainConfig, and rejection of bad files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tuner.errors import SpaceError
from tuner.space.load import SPACES_DIR, load_space


def test_default_space_is_the_documented_fine_tuning_space() -> None:
    space = load_space("default.yaml")
    params = {p.name: p for p in space.params}
    assert set(params) == {"learning_rate", "warmup_steps", "dropout", "ga_weight", "ga_sigma_start"}
    lr, warmup, dropout, ga = (params[k] for k in ("learning_rate", "warmup_steps", "dropout", "ga_weight"))
    # A hundredfold of learning rates, the trainer's own fine-tuning rate the default.
    assert (lr.kind, lr.low, lr.high, lr.log, lr.default) == ("float", 1e-5, 1e-3, True, 1e-5)
    assert (warmup.kind, warmup.low, warmup.high) == ("int", 0, 100)
    assert (dropout.low, dropout.high, dropout.default, dropout.targets) == (0.02, 0.3, 0.1, ("prenet_dropout",))
    assert (ga.low, ga.high, ga.log, ga.default) == (0.5, 10.0, True, 2.5)
    assert space.study.fine_tune and space.study.enqueue_defaults and space.study.max_steps == 1000
    assert {g.metric for g in space.study.gates} == {"tf_diagonality", "fr_hit_max_rate", "fr_stop_error",
                                                     "tf_gate_balanced_accuracy"}
    # Ranked by what the model says from text alone, on 32 held-out sentences; the batch size is fixed.
    assert space.study.objective.metrics == ("fr_mcd_sl",)
    assert space.study.objective.directions == ("minimize",)
    assert (space.fixed["val_size"], space.fixed["fr_utterances"], space.fixed["batch_size"]) == (32, 8, 12)
    assert space.study.sampler == {"name": "tpe", "n_startup_trials": 6, "multivariate": True, "constant_liar": True}
    assert load_space("scratch").study.objective.metrics == ("fr_mcd_sl",)


def test_default_space_maps_parameters_onto_train_config() -> None:
    space = load_space("default")
    config = space.build_config({"learning_rate": 2e-4, "warmup_steps": 20, "dropout": 0.12, "ga_weight": 4.0,
                                 "ga_sigma_start": 0.3})
    assert config.learning_rate == 2e-4 and config.warmup_steps == 20 and config.ga_weight == 4.0
    assert config.prenet_dropout == 0.12 and config.ga_sigma_start == 0.3 and config.batch_size == 12
    assert config.lr_profile == "finetune" and config.max_steps == space.study.max_steps
    assert config.best_metric == "fr_mcd_sl"  # best.pt is the objective's best validation
    assert sorted(config.controller_frozen_keys) == ["ga_sigma_start", "ga_weight", "learning_rate",
                                                     "prenet_dropout", "warmup_steps"]
    assert space.build_config(space.defaults(), max_steps=7).max_steps == 7


def test_a_direction_against_the_metrics_own_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("study:\n  objective: {metric: fr_mcd, direction: maximize}\nparams:\n"
                    "  ga_weight: {low: 1.0, high: 2.0}\n")
    with pytest.raises(SpaceError, match=r"d.yaml:2: study.objective: fr_mcd is minimized .* cannot be an objective "
                                         "to maximize"):
        load_space(path)


def test_best_metric_is_the_objectives_not_a_fixed_key(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text("study:\n  objective: tf_diagonality\nfixed:\n  best_metric: val_total\nparams:\n"
                    "  ga_weight: {low: 1.0, high: 2.0}\n")
    with pytest.raises(SpaceError, match="b.yaml:4: fixed.best_metric: is set by study.objective"):
        load_space(path)
    path.write_text("study:\n  objective: tf_diagonality\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n")
    assert load_space(path).build_config({"ga_weight": 1.5}).best_metric == "tf_diagonality"


def test_scratch_space_searches_scratch_learning_rates_and_alignment_knobs() -> None:
    space = load_space(SPACES_DIR / "scratch.yaml")
    params = {p.name: p for p in space.params}
    assert not space.study.fine_tune
    assert params["learning_rate"].low <= 1e-3 <= params["learning_rate"].high
    assert params["learning_rate"].low > 5e-5  # not the fine-tuning range
    assert {"ga_sigma_start", "ga_sigma_end", "tf_floor", "gate_pos_weight", "warmup_steps", "prenet_dropout",
            "reduction_factor"} <= set(params)
    assert (params["learning_rate"].low, params["learning_rate"].high) == (1e-4, 1e-2)
    assert params["reduction_factor"].choices == (1, 2, 3) and "batch_size" not in params
    assert space.study.pruner == {"name": "successive_halving", "min_resource": 200, "reduction_factor": 3}


def test_distributions_follow_the_file() -> None:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dist = load_space("default").distributions()
    assert dist["learning_rate"] == FloatDistribution(1e-5, 1e-3, log=True)
    assert dist["warmup_steps"] == IntDistribution(0, 100)
    assert isinstance(dist["dropout"], FloatDistribution) and not isinstance(dist["dropout"], CategoricalDistribution)


GOOD_HEAD = "preset: tiny\nstudy:\n  name: s\nparams:\n"


@pytest.mark.parametrize(("body", "line", "needle"), [
    (GOOD_HEAD + "  learning_rate: {type: float, low: 1.0e-3, high: 1.0e-5}\n", 5, "params.learning_rate.high"),
    (GOOD_HEAD + "  learning_rate: {type: float, low: 0.0, high: 1.0e-3, log: true}\n", 5, "log scale"),
    (GOOD_HEAD + "  learning_rate:\n    type: float\n    low: 1.0e-5\n    high: 1.0e-3\n    default: 0.5\n", 9,
     "params.learning_rate.default: 0.5 is outside"),
    (GOOD_HEAD + "  batch_size: {type: int, low: 8, high: 16, spread: 2}\n", 5,
     "params.batch_size.spread: unknown key"),
    (GOOD_HEAD + "  warp_factor: {type: float, low: 1.0, high: 2.0}\n", 5, "'warp_factor' is not a TrainConfig key"),
    (GOOD_HEAD + "  dropout:\n    low: 0.1\n    high: 0.2\n    targets: [prenet_dropout, no_such_key]\n", 8,
     "params.dropout.targets.1"),
    (GOOD_HEAD + "  mel_loss: {type: categorical, choices: []}\n", 5, "must be a non-empty list"),
    (GOOD_HEAD + "  batch_size: {type: int, low: 8.5, high: 16}\n", 5, "must be an integer"),
    (GOOD_HEAD + "  prenet_dropout: {type: float, low: 0.1, high: 1.5}\n", 5, "must be in [0, 1)"),
    ("study:\n  sampler: {name: annealing}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2, "unknown sampler"),
    ("study:\n  pruner: {name: median, n_starup_trials: 3}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2,
     "study.pruner.n_starup_trials: unknown setting of MedianPruner"),
    ("study:\n  gates:\n    - {metric: tf_diagonality, after_step: 100}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n",
     3, "needs 'min' or 'max'"),
    ("fixed:\n  tf_floor: 1.5\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2, "fixed.tf_floor"),
    ("fixed:\n  no_such: 1\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2, "fixed.no_such: not a TrainConfig key"),
    ("study:\n  objective: val_total\n  objective: quality_score\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 3,
     "duplicate key"),
    ("params:\n  ga_weight: {low: 1.0, high: 2.0\n", 3, "invalid YAML"),
    ("params:\n  ga_weight: {low: 1.0, high: 2.0}\n  dropout: {low: 0.1, high: 0.2, targets: ga_weight}\n", 3,
     "'ga_weight' is already set by parameter 'ga_weight'"),
    ("study:\n  objective: bleu\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2, "unknown metric 'bleu'"),
    # Metric names come from trainer.evaluation.metric_registry: the old alias is gone, with a hint to the one name.
    ("study:\n  objective: quality\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2,
     "study.objective: unknown metric 'quality'; did you mean quality_score"),
    ("study:\n  objective: [val_total, {metric: tf_diagonalty}]\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2,
     "study.objective.1: unknown metric 'tf_diagonalty'; did you mean tf_diagonality"),
    ("study:\n  objective: lr\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 2,
     "study.objective: lr is informational"),
    ("study:\n  gates:\n    - {metric: tf_focus, min: 0.2}\n    - {metric: quality, min: 0.2}\n"
     "params:\n  ga_weight: {low: 1.0, high: 2.0}\n", 4, "study.gates.1.metric: unknown metric 'quality'"),
    ("study:\n  gates:\n    - metric: tf_diagonality\n      min: 1.5\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n",
     4, "study.gates.0.min: 1.5 is above the highest value tf_diagonality takes (1)"),
    ("study:\n  gates:\n    - {metric: val_total, max: -1}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n",
     3, "study.gates.0.max: -1 is below the lowest value val_total takes (0)"),
    ("study:\n  gates:\n    - {min: 0.5}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n", 3,
     "study.gates.0: a gate needs 'metric'"),
])
def test_malformed_space_names_file_line_and_key(tmp_path: Path, body: str, line: int, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert needle in message, message
    assert "\n" not in message


def test_missing_space_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="search-space file not found"):
        load_space(tmp_path / "nope.yaml")


def test_two_objectives_and_quality_directions(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("study:\n  objective: [val_mel_postnet_l1, quality_score]\n"
                    "params:\n  ga_weight: {low: 1.0, high: 2.0}\n")
    space = load_space(path)
    assert space.study.objective.multi
    assert space.study.objective.directions == ("minimize", "maximize")


def test_gate_checks_after_its_start() -> None:
    from tuner.space.spec import Gate

    gate = Gate("tf_diagonality", min=0.5, after_step=100)
    assert gate.violation(50, {"tf_diagonality": 0.1}, 300) is None
    assert "0.100 < 0.5" in gate.violation(100, {"tf_diagonality": 0.1}, 300)
    assert gate.violation(150, {"tf_diagonality": 0.7}, 300) is None
    late = Gate("tf_gate_balanced_accuracy", min=0.6, after_fraction=0.7)
    assert late.start_step(300) == 210
    assert late.violation(200, {"tf_gate_balanced_accuracy": 0.5}, 300) is None
    assert late.violation(225, {"tf_gate_balanced_accuracy": 0.5}, 300) is not None
    assert "nan" in Gate("val_total", max=10.0).violation(1, {"val_total": math.nan}, 10)


def test_settings_optuna_rejects_are_reported_at_load(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("study:\n  pruner: {name: threshold}\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n")
    with pytest.raises(SpaceError, match=r"p.yaml:2: study.pruner: .*lower or upper"):
        load_space(path)


@pytest.mark.parametrize(("objective", "direction"), [
    ("val_mel_postnet_l1", "minimize"), ("train_loss", "minimize"), ("fr_stop_error", "minimize"),
    ("fr_run_on_rate", "minimize"), ("tf_focus", "maximize"), ("quality_score", "maximize"),
    ("fr_quality_score", "maximize"),
])
def test_an_objectives_default_direction_is_the_registrys(tmp_path: Path, objective: str, direction: str) -> None:
    from trainer.evaluation import metric_registry

    path = tmp_path / "o.yaml"
    path.write_text(f"study:\n  objective: {objective}\nparams:\n  ga_weight: {{low: 1.0, high: 2.0}}\n")
    space = load_space(path)
    assert space.study.objective.directions == (direction,) == (metric_registry.get(objective).direction,)


def test_numbers_read_as_in_the_trainers_config_files(tmp_path: Path) -> None:
    """``1e-4`` (YAML 1.1 would read a string) is a float in a space file, as in a trainer config."""
    from trainer.config import load_config

    path = tmp_path / "e.yaml"
    path.write_text("fixed:\n  warmup_steps: 0\nparams:\n"
                    "  learning_rate: {type: float, low: 1e-4, high: 3E-3, log: true, default: 5e-4}\n"
                    "  ga_weight: {low: .5, high: 2.0}\n")
    space = load_space(path)
    lr, ga = space.params
    assert (lr.low, lr.high, lr.default) == (1e-4, 3e-3, 5e-4) and isinstance(lr.low, float)
    assert ga.low == 0.5
    config_file = tmp_path / "config.yaml"
    config_file.write_text("learning_rate: 1e-4\n")
    assert load_config(config_file, "tiny").learning_rate == lr.low
    assert space.build_config({"learning_rate": lr.low, "ga_weight": 1.0}).learning_rate == 1e-4


def test_a_vocoder_in_fixed_is_a_file_relative_to_the_space(tmp_path: Path) -> None:
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "g_02500000").write_bytes(b"weights")
    (tmp_path / "voc" / "config.json").write_text("{}")
    path = tmp_path / "v.yaml"
    path.write_text("fixed:\n  vocoder: hifigan:voc/g_02500000\n  vocoder_config: voc/config.json\nparams:\n"
                    "  ga_weight: {low: 1.0, high: 2.0}\n")
    config = load_space(path).build_config({"ga_weight": 1.5})
    assert config.vocoder == f"hifigan:{tmp_path / 'voc' / 'g_02500000'}"
    assert config.vocoder_config == str(tmp_path / "voc" / "config.json")
    path.write_text("fixed:\n  vocoder: hifigan:voc/missing\n  vocoder_config: voc/config.json\nparams:\n"
                    "  ga_weight: {low: 1.0, high: 2.0}\n")
    with pytest.raises(SpaceError, match=r"v.yaml:2: fixed.vocoder: file not found: .*voc/missing"):
        load_space(path)
    path.write_text("fixed:\n  vocoder: hifigan:voc/g_02500000\nparams:\n  ga_weight: {low: 1.0, high: 2.0}\n")
    with pytest.raises(SpaceError, match=r"v.yaml:2: fixed.vocoder: .*'vocoder_config' must give its config.json"):
        load_space(path)


def test_run_study_vocoder_flags_replace_the_space_vocoder(tmp_path: Path, short_corpus: Path, tuner_home: Path,
                                                           fast_space_writer, cli, monkeypatch) -> None:
    from tuner.commands.run_study import StudyRequest, make_plan
    from tuner.errors import TunerError

    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "g_02500000").write_bytes(b"weights")
    (tmp_path / "voc" / "config.json").write_text("{}")
    space = fast_space_writer(tmp_path)
    monkeypatch.chdir(tmp_path)  # the flags' paths are relative to where the user types them
    plan = make_plan(StudyRequest(space=str(space), data=short_corpus, vocoder="hifigan:voc/g_02500000",
                                  vocoder_config=Path("voc/config.json")))
    config = plan.space.build_config({"learning_rate": 1e-3})
    assert config.vocoder == f"hifigan:{tmp_path / 'voc' / 'g_02500000'}"
    assert config.vocoder_config == str(tmp_path / "voc" / "config.json")
    with pytest.raises(SpaceError, match=r"--vocoder: file not found: .*voc/missing"):
        make_plan(StudyRequest(space=str(space), data=short_corpus, vocoder="hifigan:voc/missing",
                               vocoder_config=Path("voc/config.json")))
    with pytest.raises(TunerError, match="--vocoder-config needs --vocoder"):
        make_plan(StudyRequest(space=str(space), data=short_corpus, vocoder_config=Path("voc/config.json")))
    done = cli(["run-study", "--space", str(space), "--data", str(short_corpus), "--no-mlflow",
                "--vocoder", "hifigan:voc/g_02500000"], cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "--vocoder: " in done.stderr and "vocoder_config" in done.stderr  # a generator needs its config
