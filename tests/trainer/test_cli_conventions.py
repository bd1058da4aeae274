"""The `trainer` command's conventions: the corpus positionally or as --data, --set KEY=VALUE, --device auto
on every command that has --device, and where the feature cache lives."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from trainer.cli import main
from trainer.data.dataset import FeatureCache, default_cache_root

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = ROOT / "tests" / "data" / "tiny-aligned.pt"
# A tiny-preset network shrunk further, two steps, no free-running validation: seconds on a CPU.
MICRO = """\
symbols_embedding_dim: 32
encoder_embedding_dim: 32
attention_rnn_dim: 64
attention_dim: 16
prenet_dim: 32
decoder_rnn_dim: 64
postnet_embedding_dim: 16
batch_size: 4
val_size: 4
max_steps: 2
val_interval: 2
warmup_steps: 1
torch_threads: 1
fr_utterances: 0
fr_asr: "off"
"""


def _one_error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("trainer"), err
    assert "Traceback" not in err
    return lines[0]


def test_set_overrides_keys_typed_like_the_config_file(demo_corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "micro.yaml"
    config.write_text(MICRO + "learning_rate: 1e-3\n", encoding="utf-8")
    run = tmp_path / "run"
    # The corpus positionally; --set over the file, read as YAML (1e-4 is a float, kl a string, null None).
    assert main(["train", str(demo_corpus), "--out", str(run), "--config", str(config), "--quiet",
                 "--set", "learning_rate=2e-3", "--set", "ga_kind=kl", "--set", "model.attention_dim=8",
                 "--set", "gate_pos_weight=5", "--set", "phases=false", "--set", "cache_dir=null"]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["learning_rate"] == 2e-3 and isinstance(saved["learning_rate"], float)
    assert saved["ga_kind"] == "kl" and saved["model"]["attention_dim"] == 8
    assert saved["gate_pos_weight"] == 5.0 and saved["phases"] is False and saved["cache_dir"] is None
    assert saved["max_steps"] == 2  # the file's keys that --set does not name stay
    # --max-steps is applied after --set.
    other = tmp_path / "other"
    assert main(["train", "--data", str(demo_corpus), "--out", str(other), "--config", str(config), "--quiet",
                 "--set", "max_steps=5", "--max-steps", "1"]) == 0
    assert yaml.safe_load((other / "config.yaml").read_text(encoding="utf-8"))["max_steps"] == 1


@pytest.mark.parametrize(("args", "needle"), [
    (["--set", "warp_factor=9"], "--set warp_factor=9: unknown key 'warp_factor'"),
    (["--set", "val_interval=often"], "--set val_interval=often: key 'val_interval' must be int, got str 'often'"),
    (["--set", "learning_rate=fast"], "key 'learning_rate' must be float or NoneType"),
    (["--set", "prenet_dropout=1.5"], "key 'prenet_dropout' must be in [0, 1)"),
    (["--set", "ga_kind=sideways"], "key 'ga_kind' must be one of per_step, kl, off"),
    (["--set", "model.warp=2"], "unknown key 'model.warp'"),
    (["--set", "learning_rate"], "expected KEY=VALUE"),
    (["--set", "=3"], "expected KEY=VALUE"),
    (["--set", "learning_rate=[1,"], "the value is not valid YAML"),
    (["--set", "preset=base"], "the preset is chosen with --preset"),
    (["--set", "learning_rate=1e-4", "--resume"], "--set cannot change a resumed run's config"),
    (["--config", "other.yaml", "--resume"], "--config cannot change a resumed run's config"),
    (["--preset", "base", "--resume"], "--preset cannot change a resumed run's config"),
])
def test_a_bad_set_is_one_line_exit_2_and_nothing_written(demo_corpus: Path, tmp_path: Path, capsys,
                                                          args: list[str], needle: str) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(demo_corpus), "--out", str(run), "--quiet", *args]) == 2
    assert needle in _one_error_line(capsys)
    assert not run.exists()


@pytest.mark.parametrize("command", ["check-data", "plan", "train"])
def test_the_corpus_is_positional_or_an_option(demo_corpus: Path, tmp_path: Path, capsys, command: str) -> None:
    extra = ["--out", str(tmp_path / "run")] if command == "train" else []
    if command != "train":  # train is shown both ways by the test of --set above
        assert main([command, str(demo_corpus)]) == 0
        positional = capsys.readouterr().out
        assert main([command, "--data", str(demo_corpus)]) == 0
        assert capsys.readouterr().out == positional
        assert main([command, str(demo_corpus), "--data", str(demo_corpus)]) == 0  # the same one twice is fine
        capsys.readouterr()
    assert main([command, *extra]) == 2
    assert f"a corpus is required: trainer {command} DATA (or --data DATA)" in _one_error_line(capsys)
    assert main([command, str(demo_corpus), "--data", str(tmp_path / "other"), *extra]) == 2
    assert f"two corpora given: {demo_corpus} and --data {tmp_path / 'other'}" in _one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_synth_takes_device_auto_by_default(tmp_path: Path) -> None:
    from trainer.cli import build_parser

    args = build_parser().parse_args(["synth", "--checkpoint", "c.pt", "--text", "x", "--out", "o.wav"])
    assert args.device == "auto"
    for device in ("auto", "cpu"):
        wav = tmp_path / f"{device}.wav"
        torch.manual_seed(0)
        assert main(["synth", "--checkpoint", str(CHECKPOINT), "--text", "Hello.", "--out", str(wav),
                     "--device", device]) == 0
        assert sf.info(str(wav)).frames > 0


def test_synth_is_repeatable_per_seed(tmp_path: Path) -> None:
    # Prenet dropout stays on at inference: the seed decides the wav, not whatever ran before.
    def speak(name: str, *seed: str) -> bytes:
        torch.manual_seed(len(name))  # a different global state before each call
        wav = tmp_path / f"{name}.wav"
        assert main(["synth", "--checkpoint", str(CHECKPOINT), "--text", "Hello there.", "--out", str(wav),
                     "--device", "cpu", *seed]) == 0
        return wav.read_bytes()

    assert speak("a") == speak("bb")  # the default seed
    assert speak("c", "--seed", "7") == speak("dddd", "--seed", "7")
    assert speak("e", "--seed", "7") != speak("f")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("command", ["synth", "train"])
def test_device_cuda_without_cuda_is_bad_input(demo_corpus: Path, tmp_path: Path, capsys, command: str) -> None:
    args = (["synth", "--checkpoint", str(CHECKPOINT), "--text", "Hello.", "--out", str(tmp_path / "o.wav")]
            if command == "synth" else ["train", str(demo_corpus), "--out", str(tmp_path / "run")])
    assert main([*args, "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA device is visible" in _one_error_line(capsys)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_from_the_config_without_cuda_is_bad_input(demo_corpus: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    assert main(["train", str(demo_corpus), "--out", str(run), "--quiet", "--set", "device=cuda"]) == 2
    assert "device: 'cuda' asked for, but this machine has no CUDA device" in _one_error_line(capsys)
    assert not run.exists()


def test_the_feature_cache_root_follows_smart_tuner_cache_then_xdg(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMART_TUNER_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "mine"
    monkeypatch.delenv("SMART_TUNER_CACHE")
    assert default_cache_root() == tmp_path / "xdg" / "smart-tuner"
    assert FeatureCache().folder.parent == tmp_path / "xdg" / "smart-tuner"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # the XDG specification: ignore a relative path
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "smart-tuner"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert default_cache_root() == tmp_path / "home" / ".cache" / "smart-tuner"
