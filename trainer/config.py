"""TrainConfig: every knob of the trainer, with presets and YAML I/O; ModelConfig: the network's shape.

The config is flat for users: a YAML file is a plain mapping of key names, and the tuner
overrides keys by name (``learning_rate``, ``ga_weight``, ``attention_dim``...). Inside,
the keys that shape the network form their own ``ModelConfig`` (``config.model``), which
every checkpoint stores: two checkpoints with equal ModelConfigs have interchangeable
weights. A model key may be written flat (``attention_dim: 64``) or under ``model:``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from trainer.errors import ConfigError
from trainer.evaluation import metric_registry
from trainer.fileio import atomic_write_text
from trainer.model.registry import architecture_names
from trainer.presets import OVERRIDES, PRESETS
from trainer.text.symbols import CHARACTER_LANGUAGES, LANGUAGES, LEGACY_TEXT_FRONTEND
from trainer.yamlio import safe_load

# Base learning rates: fine-tuning a pretrained checkpoint on a new voice
# with little data wants a small rate; training from scratch needs about 1e-3.
LR_PROFILES: dict[str, float] = {"finetune": 1e-5, "scratch": 1e-3}
AUTO_METRIC = "auto"  # best_metric's default: the selection metric below, or the teacher-forced one
SELECTION_METRIC = "fr_mcd_sl"  # what best.pt and the no-improvement stop follow while free-running is measured
TEACHER_FORCED_METRIC = "val_mel_postnet_l1"  # ... and without free-running validation (fr_utterances 0)


@dataclass
class ModelConfig:
    """The keys that shape the network (the published Tacotron2 sizes; the tiny preset shrinks them).

    A base checkpoint can warm-start a run only when these agree (the symbol set aside,
    which a warm start handles by skipping the text embedding).
    """

    architecture: str = "tacotron2"  # a name in trainer.model.registry (trainer.model.architectures adds one)
    symbols_embedding_dim: int = 512
    encoder_embedding_dim: int = 512
    encoder_n_convolutions: int = 3
    encoder_kernel_size: int = 5
    attention_rnn_dim: int = 1024
    attention_dim: int = 128
    attention_location_n_filters: int = 32
    attention_location_kernel_size: int = 31
    prenet_dim: int = 256
    decoder_rnn_dim: int = 1024
    postnet_embedding_dim: int = 512
    postnet_kernel_size: int = 5
    postnet_n_convolutions: int = 5
    reduction_factor: int = 1  # mel frames emitted per decoder step
    # "phonemes" (eSpeak NG's IPA with stress) | "characters" (en, ru) | "nvidia" (NVIDIA/tacotron2's table).
    # Phonemes by default: on bench/intelligibility.py a tiny model reading them reached the word error rate
    # goal (2x the resynthesis ceiling) by step 2,500, one reading characters had not at 3,000 (docs/RESULTS.md).
    text_frontend: str = "phonemes"


MODEL_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelConfig))


@dataclass
class TrainConfig:
    """All training settings. Units are in the field names or comments (steps are optimiser steps)."""

    # --- audio: features follow the fixed Tacotron2/HiFi-GAN convention (trainer.audio.mel) ---
    peak_normalize: bool = False

    # --- text ---
    lang: str = "en"
    on_unknown_char: str = "error"  # "error" | "drop"

    # --- data ---
    min_seconds: float = 0.3
    max_seconds: float = 12.0
    val_size: int = 8  # held-out utterances (taken deterministically from the corpus)
    skip_bad_items: bool = False
    cache_dir: str | None = None  # None: trainer.data.dataset.default_cache_root() ($SMART_TUNER_CACHE, XDG)

    # --- model: the network's shape (ModelConfig); dropout rates and the inference limit follow ---
    model: ModelConfig = field(default_factory=ModelConfig)
    max_decoder_steps: int = 1000

    # --- dropout (per module; the prenet's also at inference, where Tacotron2 keeps it on) ---
    prenet_dropout: float = 0.1
    prenet_dropout_inference: float = 0.02  # really applied at inference; 0 turns it off
    attention_dropout: float = 0.05  # on the attention RNN's hidden state
    decoder_dropout: float = 0.1  # on the decoder RNN's hidden state (Tacotron2's value)
    encoder_dropout: float = 0.02
    postnet_dropout: float = 0.05

    # --- optimiser and learning rate ---
    lr_profile: str = "auto"  # "auto" (finetune when warm-starting, else scratch) | "scratch" | "finetune"
    learning_rate: float | None = None  # overrides the profile's rate when set
    warmup_steps: int = 2000
    lr_restart_period: int = 10000  # first cosine cycle, in steps after warm-up
    lr_restart_mult: int = 2
    min_learning_rate: float = 1e-6
    weight_decay: float = 1e-6
    adam_eps: float = 1e-6
    grad_clip_norm: float = 1.0

    # --- batching ---
    batch_size: int = 12
    grad_accum_steps: int = 3

    # --- guided attention ---
    ga_kind: str = "per_step"  # "per_step" (Tachibana, per-decoder-step normalised) | "kl" | "off"
    ga_weight: float = 2.5
    ga_decay: float = 0.9999  # multiplied in per step
    ga_weight_floor: float = 0.0
    ga_sigma_start: float = 0.4
    ga_sigma_end: float = 0.2
    ga_sigma_anneal_steps: int = 10000

    # --- teacher forcing (scheduled sampling) ---
    tf_hold_steps: int = 1000
    tf_decay_steps: int = 10000
    tf_floor: float = 0.7

    # --- losses ---
    mel_loss: str = "spectral"  # "spectral" | "l1" | "mse"
    spectral_l1_weight: float = 1.0
    spectral_multires_weight: float = 0.3
    spectral_temporal_weight: float = 0.1
    spectral_band_floor: float = 0.2  # least weight of a mel band in the spectral L1, relative to band 0
    mel_weight: float = 1.0
    perceptual_weight: float = 0.2  # structural (SSIM) distance on log-mels
    style_weight: float = 0.1  # Gram-matrix distance of mel bands
    monotonic_weight: float = 0.1
    gate_weight: float = 1.0
    gate_pos_weight: float = 8.0
    stop_threshold: float = 0.5  # gate threshold of teacher-forced metrics, and of inference when stop_gate is fixed

    # --- inference stop gate and free-running validation ---
    stop_gate: str = "adaptive"  # "adaptive" (trainer.model.stopping.stop_threshold) | "fixed" (stop_threshold)
    fr_utterances: int = 8  # held-out sentences synthesised without teacher forcing at each validation; 0: off
    fr_max_factor: float = 2.0  # free-running limit per utterance, as a multiple of its reference length
    # At the end, best.pt (else last.pt) free-running on every held-out sentence, each with its own
    # seed: the "final" record, the figure a trial is ranked by (trainer.evaluation.final). Off with
    # fr_utterances 0.
    final_evaluation: bool = True
    fr_asr: str = "auto"  # fr_wer/fr_cer by an English recogniser: "auto" (when installed and English) | "on" | "off"
    vocoder: str = "griffin-lim"  # audio of validation samples and fr_wer: "griffin-lim" | "hifigan:GENERATOR.pt"
    vocoder_config: str | None = None  # the HiFi-GAN generator's config.json

    # --- training phases: pre-alignment -> alignment -> quality -> fine-tuning ---
    phases: bool = False  # on: GA weight 10/3/1/0.5 and LR x 1/0.8/0.5/0.3 over 500:1500:1000:500 of max_steps

    # --- which checkpoint is best.pt, and what the controller's no-improvement stop watches: the
    # validation with the best value of this registered metric. "auto": SELECTION_METRIC (fr_mcd_sl,
    # what the model says from text alone) while free-running validation is on, else TEACHER_FORCED_METRIC ---
    best_metric: str = "auto"

    # --- quality controller: detections -> interventions, each limited ---
    controller: bool = True
    early_stop: bool = True  # stop when the objective has not improved for early_stop_patience validations
    early_stop_patience: int = 10
    controller_max_ga_boosts: int = 3
    controller_max_lr_cuts: int = 3
    controller_max_rollbacks: int = 2
    # Config keys the controller must not change (a tuner's study samples them): an intervention on
    # one (learning_rate, ga_weight, gate_weight) is logged as none_left_to_tuner instead of made.
    controller_frozen_keys: list[str] = field(default_factory=list)
    plots: bool = True  # attention, mel and gate PNGs and the free-running sample WAV in RUN/plots at each validation

    # --- run ---
    max_steps: int = 10000
    val_interval: int = 100
    checkpoint_interval: int = 500
    keep_step_checkpoints: bool = False  # also keep checkpoints/step_NNNNNN.pt at every checkpoint_interval
    log_interval: int = 10
    seed: int = 1234
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    amp: bool = True  # mixed precision on CUDA (ignored on the CPU); amp_dtype says which
    amp_dtype: str = "auto"  # "auto" (bfloat16 where the GPU has it, else float16) | "bfloat16" | "float16"
    max_nonfinite_steps: int = 10  # consecutive skipped steps before the run stops
    torch_threads: int = 0  # 0: leave torch's default

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a plain dict of YAML-safe values (the model keys under ``model``)."""
        return dataclasses.asdict(self)

    def replace(self, **overrides: Any) -> TrainConfig:
        """Return a copy with ``overrides`` applied and validated (ConfigError names a bad key).

        Model keys may be given flat (``attention_dim=64``) or as ``model={...}``.
        """
        return with_overrides(self, overrides, "overrides")

    @property
    def selection_metric(self) -> str:
        """Return the metric that picks best.pt and that no improvement is judged on (``best_metric`` resolved).

        "auto" is ``SELECTION_METRIC`` (fr_mcd_sl) with free-running validation on: a
        teacher-forced loss stops falling while the model still learns to speak (and is lowered
        by a decoder that copies its previous frame), and fr_wer sits near 1.0 for the first
        thousand steps, so its ties would stop a run before it speaks. With ``fr_utterances`` 0
        only the teacher-forced ``TEACHER_FORCED_METRIC`` is measured.
        """
        if self.best_metric != AUTO_METRIC:
            return self.best_metric
        return SELECTION_METRIC if self.fr_utterances > 0 else TEACHER_FORCED_METRIC

    def resolved_learning_rate(self, warm_start: bool) -> float:
        """Return the base learning rate: the explicit one, else the profile's (1e-5 finetune, 1e-3 scratch)."""
        if self.learning_rate is not None:
            return self.learning_rate
        profile = self.lr_profile
        if profile == "auto":
            profile = "finetune" if warm_start else "scratch"
        return LR_PROFILES[profile]


# Every key a config file, an override or a search space may set, model keys written flat.
CONFIG_KEYS: frozenset[str] = frozenset(
    [f.name for f in dataclasses.fields(TrainConfig) if f.name != "model"] + list(MODEL_KEYS))

KEY_CHOICES: dict[str, tuple[str, ...]] = {
    "on_unknown_char": ("error", "drop"),
    "lr_profile": ("auto", "scratch", "finetune"),
    "ga_kind": ("per_step", "kl", "off"),
    "mel_loss": ("spectral", "l1", "mse"),
    "device": ("auto", "cpu", "cuda"),
    "amp_dtype": ("auto", "bfloat16", "float16"),
    "stop_gate": ("adaptive", "fixed"),
    "fr_asr": ("auto", "on", "off"),
    "lang": LANGUAGES,
    "text_frontend": ("characters", "phonemes", "nvidia"),
}

_POSITIVE_INTS = (
    "batch_size", "grad_accum_steps",
    "reduction_factor", "max_decoder_steps", "val_interval", "checkpoint_interval", "log_interval",
    "max_nonfinite_steps", "lr_restart_period", "lr_restart_mult",
)

# Upper limits: a value beyond one is a typo (a batch of 1e29, a learning rate of 1e300, 1e14
# steps) that would exhaust memory, diverge at once or run for years; refused when the config
# is read, so a search space with such a bound is refused by `tuner check-space` before a study.
_UPPER_LIMITS: dict[str, float] = {
    "batch_size": 4096, "grad_accum_steps": 1024, "max_steps": 10_000_000, "warmup_steps": 10_000_000,
    "val_interval": 10_000_000, "checkpoint_interval": 10_000_000, "log_interval": 10_000_000,
    "val_size": 100_000, "fr_utterances": 100_000, "max_decoder_steps": 100_000, "reduction_factor": 16,
    "learning_rate": 1.0, "min_learning_rate": 1.0,  # Adam's step is about the rate itself: above 1 it diverges
    "ga_weight": 1000.0, "gate_weight": 1000.0, "gate_pos_weight": 10_000.0, "mel_weight": 1000.0,
    "perceptual_weight": 1000.0, "style_weight": 1000.0, "monotonic_weight": 1000.0,
    "symbols_embedding_dim": 8192, "encoder_embedding_dim": 8192, "attention_rnn_dim": 8192, "attention_dim": 8192,
    "prenet_dim": 8192, "decoder_rnn_dim": 8192, "postnet_embedding_dim": 8192,
}

_RATES = ("prenet_dropout", "prenet_dropout_inference", "attention_dropout", "decoder_dropout",
          "encoder_dropout", "postnet_dropout", "tf_floor")
_UNIT_INTERVAL = ("spectral_band_floor",)
_ODD_SIZES = ("attention_location_kernel_size", "encoder_kernel_size", "postnet_kernel_size")


def _value(config: TrainConfig, key: str) -> Any:
    """Return the value of ``key`` (a flat name) in ``config``."""
    return getattr(config.model, key) if key in MODEL_KEYS else getattr(config, key)


def _preset_overrides(name: str) -> dict[str, Any]:
    """Return the keys preset ``name`` changes relative to TrainConfig's defaults (trainer.presets)."""
    if name not in OVERRIDES:
        raise ConfigError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    return dict(OVERRIDES[name])


def preset(name: str) -> TrainConfig:
    """Return the TrainConfig of preset ``name`` (one of ``PRESETS``)."""
    source = f"preset {name}"
    return config_from_dict(_merged(TrainConfig().to_dict(), _preset_overrides(name), source), source=source)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    """Return ``value`` checked against the field's type; int is accepted for float fields."""
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None:
        if type(None) in allowed:
            return None
        raise ConfigError(f"{source}: key '{key}' must not be null")
    for kind in allowed:
        if typing.get_origin(kind) is list:
            if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
                return list(value)
            raise ConfigError(f"{source}: key '{key}' must be a list of strings, got {type(value).__name__} {value!r}")
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
        if kind is str and isinstance(value, bool) and (word := _yaml_boolean_word(key, value)) is not None:
            return word
    names = " or ".join(getattr(k, "__name__", str(k)) for k in allowed)
    raise ConfigError(f"{source}: key '{key}' must be {names}, got {type(value).__name__} {value!r}")


# The words YAML 1.1 reads as booleans (a bare `off` in a file or in --set KEY=off is False).
_YAML_TRUE = ("on", "yes", "true", "y")
_YAML_FALSE = ("off", "no", "false", "n")


def _yaml_boolean_word(key: str, value: bool) -> str | None:
    """Return the one choice of string key ``key`` that YAML would have read as ``value`` (`ga_kind: off`), or None."""
    words = [choice for choice in KEY_CHOICES.get(key, ()) if choice in (_YAML_TRUE if value else _YAML_FALSE)]
    return words[0] if len(words) == 1 else None


def _nest_model_keys(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Return ``values`` with the model keys gathered under ``model`` (flat ones moved there)."""
    values = dict(values)
    model = values.pop("model", None)
    if model is None:
        model = {}
    elif isinstance(model, ModelConfig):
        model = dataclasses.asdict(model)
    elif isinstance(model, dict):
        model = dict(model)
    else:
        raise ConfigError(f"{source}: key 'model' must be a mapping of model keys, got {type(model).__name__}")
    for key in MODEL_KEYS:
        if key in values:
            flat = values.pop(key)
            if key in model and model[key] != flat:
                raise ConfigError(f"{source}: key '{key}' is given twice (flat and under 'model')")
            model[key] = flat
    values["model"] = model
    return values


def _merged(base: dict[str, Any], changes: dict[str, Any], source: str) -> dict[str, Any]:
    """Return ``base`` (a nested config dict) with ``changes`` (model keys flat or nested) applied."""
    merged = _nest_model_keys(base, source)
    changes = _nest_model_keys(changes, source)
    merged["model"] = {**merged["model"], **changes.pop("model")}
    merged.update(changes)
    return merged


def _checked_fields(cls: type, values: dict[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """Return ``values`` coerced to the field types of dataclass ``cls``; ConfigError names an unknown key."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'")
    return {key: _coerce(key, value, hints[key], source) for key, value in values.items()}


def config_from_dict(values: dict[str, Any], source: str = "config") -> TrainConfig:
    """Return a validated TrainConfig from ``values``; ConfigError names ``source`` and the bad key.

    Model keys may be flat or under ``model`` (checkpoints of earlier versions store them flat).
    """
    values = _nest_model_keys(values, source)
    model = ModelConfig(**_checked_fields(ModelConfig, values.pop("model"), source, prefix="model."))
    config = TrainConfig(**_checked_fields(TrainConfig, values, source), model=model)
    _validate(config, source)
    return config


def config_from_stored(values: dict[str, Any], source: str) -> TrainConfig:
    """Return the TrainConfig a checkpoint or run folder stored (``values``), read as it was trained.

    A stored config without ``text_frontend`` predates the key, when every model read characters;
    today's default (phonemes) would give its embedding the wrong symbol table.
    """
    values = _nest_model_keys(values, source)
    values["model"].setdefault("text_frontend", LEGACY_TEXT_FRONTEND)
    return config_from_dict(values, source=source)


def _validate(config: TrainConfig, source: str) -> None:
    """Raise ConfigError for values of the right type but out of range."""
    for key, choices in KEY_CHOICES.items():
        if _value(config, key) not in choices:
            raise ConfigError(f"{source}: key '{key}' must be one of {', '.join(choices)}, "
                              f"got {_value(config, key)!r}")
    if config.lang not in CHARACTER_LANGUAGES and config.model.text_frontend != "phonemes":
        raise ConfigError(f"{source}: key 'lang' {config.lang!r} needs text_frontend: phonemes (the character "
                          f"tables spell {', '.join(CHARACTER_LANGUAGES)}), got text_frontend "
                          f"{config.model.text_frontend!r}")
    if config.model.architecture not in architecture_names():
        raise ConfigError(f"{source}: key 'architecture' must be one of {', '.join(architecture_names())}, "
                          f"got {config.model.architecture!r}")
    for key in _POSITIVE_INTS:
        if _value(config, key) < 1:
            raise ConfigError(f"{source}: key '{key}' must be >= 1, got {_value(config, key)}")
    for key in _RATES:
        if not 0.0 <= getattr(config, key) < 1.0:
            raise ConfigError(f"{source}: key '{key}' must be in [0, 1), got {getattr(config, key)}")
    for key in _UNIT_INTERVAL:
        if not 0.0 <= getattr(config, key) <= 1.0:
            raise ConfigError(f"{source}: key '{key}' must be in [0, 1], got {getattr(config, key)}")
    for key in _ODD_SIZES:
        if _value(config, key) % 2 == 0 or _value(config, key) < 1:
            raise ConfigError(f"{source}: key '{key}' must be a positive odd number, got {_value(config, key)}")
    if config.best_metric != AUTO_METRIC and (not metric_registry.is_known(config.best_metric)
                                              or metric_registry.get(config.best_metric).direction is None):
        close = [m.name for m in metric_registry.all_metrics() if m.direction is not None]
        raise ConfigError(f"{source}: key 'best_metric' must name a metric with a direction "
                          f"(e.g. fr_mcd_sl, val_mel_postnet_l1; `tuner metrics` lists them) or be auto, "
                          f"got {config.best_metric!r}"
                          if close else f"{source}: key 'best_metric': no metric is registered")
    if config.learning_rate is not None and config.learning_rate <= 0:
        raise ConfigError(f"{source}: key 'learning_rate' must be > 0, got {config.learning_rate}")
    chosen = config.selection_metric
    if chosen.startswith("fr_") and config.fr_utterances == 0:
        raise ConfigError(f"{source}: key 'best_metric' is {chosen}, a free-running figure, but fr_utterances is 0 "
                          "(nothing is synthesised at validation): set fr_utterances > 0 or another best_metric")
    if config.fr_utterances < 0 or config.fr_max_factor < 1.0:
        raise ConfigError(f"{source}: keys 'fr_utterances' must be >= 0 and 'fr_max_factor' >= 1")
    if config.val_size < 0:
        raise ConfigError(f"{source}: key 'val_size' must be >= 0, got {config.val_size}")
    if config.vocoder != "griffin-lim" and not (config.vocoder.startswith("hifigan:") and config.vocoder[8:]):
        raise ConfigError(f"{source}: key 'vocoder' must be griffin-lim or hifigan:GENERATOR, got {config.vocoder!r}")
    if config.vocoder != "griffin-lim" and not config.vocoder_config:
        raise ConfigError(f"{source}: key 'vocoder' names a HiFi-GAN generator; key 'vocoder_config' must give its "
                          "config.json")
    if config.max_steps < 0 or config.warmup_steps < 0:
        raise ConfigError(f"{source}: keys 'max_steps' and 'warmup_steps' must be >= 0")
    if not 0.0 < config.ga_decay <= 1.0:
        raise ConfigError(f"{source}: key 'ga_decay' must be in (0, 1], got {config.ga_decay}")
    if config.ga_sigma_start <= 0 or config.ga_sigma_end <= 0:
        raise ConfigError(f"{source}: keys 'ga_sigma_start'/'ga_sigma_end' must be > 0")
    if not 0.0 < config.stop_threshold < 1.0:
        raise ConfigError(f"{source}: key 'stop_threshold' must be in (0, 1), got {config.stop_threshold}")
    _check_limits(config, source)
    _check_frozen_keys(config, source)


def _check_limits(config: TrainConfig, source: str) -> None:
    """Raise ConfigError naming the first key above its ``_UPPER_LIMITS`` entry."""
    for key, limit in _UPPER_LIMITS.items():
        value = _value(config, key)
        if value is not None and value > limit:
            raise ConfigError(f"{source}: key '{key}' must be at most {limit:g}, got {value:g}")


def _check_frozen_keys(config: TrainConfig, source: str) -> None:
    """Raise ConfigError naming the first of ``controller_frozen_keys`` that is not a config key."""
    for frozen in config.controller_frozen_keys:
        if frozen not in CONFIG_KEYS:
            raise ConfigError(f"{source}: key 'controller_frozen_keys': {frozen!r} is not a config key "
                              "(the controller turns learning_rate, ga_weight and gate_weight)")


def with_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    """Return ``config`` with ``overrides`` applied and validated like a config file's keys.

    Model keys may be flat or under ``model``; ConfigError names ``source`` (a file, ``--set KEY=VALUE``).
    """
    return config_from_dict(_merged(config.to_dict(), overrides, source), source=source)


def load_config(path: str | Path, preset_name: str = "base") -> TrainConfig:
    """Return the preset's config overridden by the YAML mapping in ``path``.

    A key ``preset`` inside the file picks the preset instead of ``preset_name``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
    try:
        values = safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(err, 'problem', err)})") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    chosen = values.pop("preset", preset_name)
    if chosen not in PRESETS:
        raise ConfigError(f"{path}: key 'preset' must be one of {', '.join(PRESETS)}, got {chosen!r}")
    base = _merged(TrainConfig().to_dict(), _preset_overrides(chosen), f"preset {chosen}")
    return config_from_dict(_merged(base, values, str(path)), source=str(path))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write ``config`` as YAML to ``path`` atomically."""
    atomic_write_text(Path(path), yaml.safe_dump(config.to_dict(), sort_keys=False))


__all__ = ["TrainConfig", "ModelConfig", "MODEL_KEYS", "CONFIG_KEYS", "ConfigError", "PRESETS", "LR_PROFILES",
           "preset", "load_config", "save_config", "config_from_dict", "config_from_stored", "with_overrides"]
