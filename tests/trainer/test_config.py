"""TrainConfig: defaults, presets, YAML loading and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import (
    ConfigError,
    TrainConfig,
    config_from_dict,
    config_from_stored,
    load_config,
    preset,
    save_config,
)


def test_defaults() -> None:
    config = TrainConfig()
    assert (config.batch_size, config.grad_accum_steps) == (12, 3)
    assert (config.prenet_dropout, config.prenet_dropout_inference) == (0.1, 0.02)
    assert (config.attention_dropout, config.encoder_dropout, config.postnet_dropout) == (0.05, 0.02, 0.05)
    assert (config.ga_weight, config.ga_decay, config.ga_sigma_start, config.ga_sigma_end) == (2.5, 0.9999, 0.4, 0.2)
    assert (config.warmup_steps, config.min_learning_rate) == (2000, 1e-6)
    assert (config.tf_hold_steps, config.tf_decay_steps, config.tf_floor) == (1000, 10000, 0.7)
    weights = (config.mel_weight, config.perceptual_weight, config.style_weight, config.monotonic_weight)
    assert weights == (1.0, 0.2, 0.1, 0.1)


def test_text_frontend_defaults_to_phonemes_but_a_stored_config_without_it_reads_characters() -> None:
    assert TrainConfig().model.text_frontend == "phonemes"
    assert preset("tiny").replace(lang="ru").model.text_frontend == "phonemes"
    stored = preset("tiny").to_dict()
    del stored["model"]["text_frontend"]  # as checkpoints written before the key existed
    assert config_from_dict(stored).model.text_frontend == "phonemes"  # a user's file: today's default
    assert config_from_stored(stored, source="old.pt").model.text_frontend == "characters"
    flat = {k: v for k, v in stored.items() if k != "model"} | stored["model"]  # the oldest layout, model keys flat
    assert config_from_stored(flat, source="older.pt").model.text_frontend == "characters"
    kept = preset("tiny").replace(text_frontend="nvidia").to_dict()
    assert config_from_stored(kept, source="new.pt").model.text_frontend == "nvidia"


def test_learning_rate_profiles() -> None:
    config = TrainConfig()
    assert config.resolved_learning_rate(warm_start=True) == 1e-5
    assert config.resolved_learning_rate(warm_start=False) == 1e-3
    assert config.replace(lr_profile="finetune").resolved_learning_rate(warm_start=False) == 1e-5
    assert config.replace(learning_rate=3e-4).resolved_learning_rate(warm_start=True) == 3e-4


def test_presets_differ_in_size() -> None:
    tiny, small, base = preset("tiny"), preset("small"), preset("base")
    assert tiny.model.reduction_factor == 2 and base.model.reduction_factor == 1
    assert tiny.model.decoder_rnn_dim < small.model.decoder_rnn_dim < base.model.decoder_rnn_dim == 1024
    # small is tiny made wider: the same reduction factor and schedules, a budget long enough to speak.
    assert small.model.reduction_factor == 2 and small.max_steps == 2000 > tiny.max_steps
    assert small.warmup_steps == tiny.warmup_steps and small.tf_decay_steps == tiny.tf_decay_steps
    # The CPU presets train on one thread (a second one did not pay at their size); base takes torch's default.
    assert tiny.torch_threads == small.torch_threads == 1 and base.torch_threads == 0
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = preset("tiny").replace(learning_rate=2e-4, batch_size=8)
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config


def test_yaml_file_overrides_preset(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nbatch_size: 9\nlearning_rate: 1e-4\n")
    config = load_config(path)
    assert config.batch_size == 9 and config.learning_rate == 1e-4 and config.model.reduction_factor == 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("bogus_key: 1\n", "unknown key 'bogus_key'"),
        ("batch_size: twelve\n", "key 'batch_size' must be int"),
        ("batch_size: 0\n", "key 'batch_size' must be >= 1"),
        ("prenet_dropout: 1.5\n", "key 'prenet_dropout' must be in [0, 1)"),
        ("ga_kind: diagonal\n", "key 'ga_kind' must be one of"),
        ("amp: 3\n", "key 'amp' must be bool"),
        ("attention_location_kernel_size: 4\n", "key 'attention_location_kernel_size' must be a positive odd"),
        ("batch_size: [1\n", "invalid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("preset: giant\n", "key 'preset'"),
        ("controller_frozen_keys: [ga_weight, lr]\n", "key 'controller_frozen_keys': 'lr' is not a config key"),
        ("controller_frozen_keys: ga_weight\n", "key 'controller_frozen_keys' must be a list of strings"),
    ],
)
def test_bad_yaml_names_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_int_accepted_for_float_but_bool_is_not_an_int() -> None:
    assert TrainConfig().replace(ga_weight=3).ga_weight == 3.0
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig().replace(batch_size=True)


def test_a_bare_on_or_off_reads_as_the_choice_it_spells() -> None:
    from trainer.yamlio import safe_load

    values = safe_load("fr_asr: off\n")
    assert values == {"fr_asr": False}  # what YAML 1.1 makes of it...
    assert config_from_dict(values).fr_asr == "off"  # ...and what the user meant
    assert config_from_dict(safe_load("fr_asr: on\n")).fr_asr == "on"
    with pytest.raises(ConfigError, match="key 'stop_gate' must be str, got bool"):
        config_from_dict({"stop_gate": True})  # no on/off among its choices: still refused


def test_every_documented_value_of_every_string_key_reads_alike_from_set_a_config_file_and_a_space(
        tmp_path: Path) -> None:
    # YAML 1.1 reads a bare off/no/on/yes as a boolean; each must still mean the choice it spells.
    from trainer.cli import _overrides
    from trainer.config import KEY_CHOICES, load_config
    from tuner.space.load import load_space

    for key, choices in KEY_CHOICES.items():
        for choice in choices:
            extra = {"text_frontend": "phonemes"} if key == "lang" and choice not in ("en", "ru") else {}
            from_set = {k: v for _, values in _overrides([f"{key}={choice}"]) for k, v in values.items()}
            config = TrainConfig().replace(**extra).replace(**{k: v for k, v in from_set.items() if k != "model"},
                                                            **from_set.get("model", {}))
            assert _flat(config, key) == choice, (key, choice, "--set")
            file = tmp_path / f"{key}-{choice}.yaml"
            file.write_text(f"{key}: {choice}\n" + "".join(f"{k}: {v}\n" for k, v in extra.items()))
            assert _flat(load_config(file), key) == choice, (key, choice, "config file")
            space = tmp_path / f"space-{key}-{choice}.yaml"
            space.write_text("preset: tiny\nfixed:\n" + "".join(f"  {k}: {v}\n" for k, v in
                                                                {key: choice, **extra}.items())
                             + "params:\n  ga_weight: {low: 1.0, high: 2.0}\n")
            built = load_space(space).build_config({"ga_weight": 1.5}, preset_name="tiny", max_steps=10)
            assert _flat(built, key) == choice, (key, choice, "space")


def _flat(config: TrainConfig, key: str) -> object:
    return getattr(config.model, key) if hasattr(config.model, key) else getattr(config, key)


def test_absurd_values_are_refused_naming_the_key() -> None:
    for key, value in (("batch_size", 10**29), ("max_steps", 10**14), ("learning_rate", 1e300),
                       ("decoder_rnn_dim", 10**6)):
        with pytest.raises(ConfigError, match=f"key '{key}' must be at most"):
            TrainConfig().replace(**{key: value})


def test_yaml_aliases_cannot_blow_up_a_config_file(tmp_path: Path) -> None:
    from trainer.errors import ConfigError

    lines = ["lr_profile: scratch", "x0: &x0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"bomb.yaml: line \d+ invalid YAML \(the document holds more than"):
        load_config(bomb)
    loop = tmp_path / "loop.yaml"
    loop.write_text("seed: &s [*s]\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config(loop)


def test_controller_frozen_keys_are_config_keys_and_none_by_default(tmp_path: Path) -> None:
    assert TrainConfig().controller_frozen_keys == [] and preset("tiny").controller_frozen_keys == []
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\ncontroller_frozen_keys: [learning_rate, ga_weight, attention_dim]\n")
    config = load_config(path)
    assert config.controller_frozen_keys == ["learning_rate", "ga_weight", "attention_dim"]  # a model key counts too
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config
    with pytest.raises(ConfigError, match=r"^overrides: key 'controller_frozen_keys': 'ga' is not a config key"):
        config.replace(controller_frozen_keys=["learning_rate", "ga"])
