"""The vocoder path: HiFi-GAN generators in the public layout, synth --vocoder/--save-mel, export-mels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from trainer.cli import main
from trainer.data.corpus import read_corpus
from trainer.data.dataset import FeatureCache
from trainer.errors import ConfigError, UserError
from trainer.synthesis.vocoder import HifiGanConfig, HifiGanGenerator, fold_weight_norm, load_hifigan, make_vocoder

CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "tiny-aligned.pt"

# Shrunk V1 (resblock 1) and V2 (resblock 2) configs: the public files' keys, fewer channels.
V1 = {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
      "upsample_initial_channel": 32, "resblock_kernel_sizes": [3, 7, 11],
      "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "sampling_rate": 22050,
      "hop_size": 256, "learning_rate": 0.0002}
V2 = {**V1, "resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
      "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2], [2, 6]]}


def _public_generator(config: dict, folder: Path, parametrized: bool, seed: int = 0) -> tuple[Path, Path, nn.Module]:
    """Save a random generator as the public repository does; return (checkpoint, config.json, the module).

    Every convolution is weight-normalised (the old ``weight_g``/``weight_v`` spelling, or the
    newer parametrisation) and its gains perturbed, so loading must really fold g · v / ‖v‖.
    """
    torch.manual_seed(seed)
    (folder / "config.json").write_text(json.dumps(config))
    module = HifiGanGenerator(HifiGanConfig.from_json(folder / "config.json"))
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv1d, nn.ConvTranspose1d)):
            if parametrized:
                nn.utils.parametrizations.weight_norm(layer)
                original0 = layer.parametrizations.weight.original0
            else:
                nn.utils.weight_norm(layer)
                original0 = layer.weight_g
            with torch.no_grad():
                original0.mul_(torch.rand_like(original0) + 0.5)
    state = module.state_dict()
    assert any(k.endswith("original0" if parametrized else "weight_g") for k in state)
    torch.save({"generator": state}, folder / "g_00000000")
    return folder / "g_00000000", folder / "config.json", module.eval()


pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.weight_norm.*is deprecated:FutureWarning")


@pytest.mark.parametrize(("config", "parametrized"), [(V1, False), (V2, False), (V1, True)],
                         ids=["v1-weight_g", "v2-weight_g", "v1-parametrized"])
def test_public_layout_loads_and_vocodes_like_the_original(tmp_path: Path, config: dict, parametrized: bool) -> None:
    checkpoint, config_file, original = _public_generator(config, tmp_path, parametrized)
    loaded = load_hifigan(checkpoint, config_file)
    mel = torch.randn(1, 80, 9) - 4.0
    with torch.no_grad():
        expected = original(mel)
        got = loaded(mel)
    assert got.shape == (1, 1, 9 * 256)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert not any("weight_g" in k or "parametrizations" in k for k in loaded.state_dict())


def test_fold_weight_norm_by_hand() -> None:
    g = torch.tensor([[[2.0]], [[3.0]]])  # (out=2, 1, 1)
    v = torch.tensor([[[3.0, 4.0]], [[0.0, 1.0]]])  # (2, in=1, k=2): norms 5 and 1
    folded = fold_weight_norm({"c.weight_g": g, "c.weight_v": v, "c.bias": torch.zeros(2)})
    assert set(folded) == {"c.weight", "c.bias"}
    torch.testing.assert_close(folded["c.weight"], torch.tensor([[[1.2, 1.6]], [[0.0, 3.0]]]))


def test_a_config_that_does_not_match_the_weights_is_one_line(tmp_path: Path) -> None:
    checkpoint, _, _ = _public_generator(V1, tmp_path, parametrized=False)
    wider = tmp_path / "wider.json"
    wider.write_text(json.dumps({**V1, "upsample_initial_channel": 64}))
    with pytest.raises(UserError, match=r"does not match .*wider\.json: conv_pre\.weight is \(32, 80, 7\)"):
        load_hifigan(checkpoint, wider)
    other_kind = tmp_path / "v2.json"
    other_kind.write_text(json.dumps(V2))
    with pytest.raises(UserError, match="does not match") as caught:
        load_hifigan(checkpoint, other_kind)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("change", "needle"), [
    ({"hop_size": 300}, "key 'hop_size' is 300; our mels need 256"),
    ({"upsample_rates": [8, 8, 2, 4]}, "key 'upsample_rates' multiplies to 512"),
    ({"resblock": "3"}, "key 'resblock' must be"),
    ({"resblock_dilation_sizes": [[1, 3]] * 3}, "must list 3 dilations per kernel"),
    ({"upsample_initial_channel": None}, "bad value"),
])
def test_bad_vocoder_configs_name_the_key(tmp_path: Path, change: dict, needle: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**V1, **change}))
    with pytest.raises(UserError, match="config.json: .*" + needle.replace("(", r"\(").replace("[", r"\[")):
        HifiGanConfig.from_json(path)


def test_missing_key_and_not_a_generator_checkpoint(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({k: v for k, v in V1.items() if k != "upsample_rates"}))
    with pytest.raises(UserError, match="lacks key 'upsample_rates'"):
        HifiGanConfig.from_json(config)
    config.write_text(json.dumps(V1))
    torch.save({"state_dict": {}}, tmp_path / "not-hifigan.pt")
    with pytest.raises(UserError, match="no 'generator' state dict"):
        load_hifigan(tmp_path / "not-hifigan.pt", config)
    with pytest.raises(UserError, match="expected griffin-lim or hifigan:GENERATOR"):
        make_vocoder("wavenet", config)
    with pytest.raises(UserError, match="needs its config.json"):
        make_vocoder(f"hifigan:{tmp_path / 'not-hifigan.pt'}")


def test_synth_vocodes_with_hifigan_and_saves_the_mel(tmp_path: Path) -> None:
    checkpoint, config_file, _ = _public_generator(V1, tmp_path, parametrized=False)
    wav, mel = tmp_path / "out" / "hello.wav", tmp_path / "out" / "hello.npy"
    torch.manual_seed(0)
    assert main(["synth", "--checkpoint", str(CHECKPOINT), "--text", "Hello there.", "--out", str(wav),
                 "--device", "cpu", "--vocoder", f"hifigan:{checkpoint}", "--vocoder-config", str(config_file),
                 "--save-mel", str(mel)]) == 0
    saved = np.load(mel)
    assert saved.dtype == np.float32 and saved.shape[0] == 80 and saved.shape[1] > 10
    assert sf.info(str(wav)).frames == saved.shape[1] * 256  # HiFi-GAN: exactly one hop per frame


def test_synth_with_a_mismatched_vocoder_is_bad_input_and_writes_nothing(tmp_path: Path, capsys) -> None:
    checkpoint, _, _ = _public_generator(V1, tmp_path, parametrized=False)
    wrong = tmp_path / "v2.json"
    wrong.write_text(json.dumps(V2))
    out = tmp_path / "out"
    assert main(["synth", "--checkpoint", str(CHECKPOINT), "--text", "Hello.", "--out", str(out / "a.wav"),
                 "--vocoder", f"hifigan:{checkpoint}", "--vocoder-config", str(wrong)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "does not match" in lines[0] and "Traceback" not in lines[0]
    assert not out.exists()


def test_export_mels_writes_teacher_forced_mels_aligned_to_the_recordings(tmp_path: Path, demo_corpus: Path,
                                                                          capsys) -> None:
    out = tmp_path / "mels"
    assert main(["export-mels", "--checkpoint", str(CHECKPOINT), str(demo_corpus), "--out", str(out),
                 "--device", "cpu", "--batch-size", "5"]) == 0
    assert "24 teacher-forced mels" in capsys.readouterr().out
    cache = FeatureCache()
    for utterance in read_corpus(demo_corpus):
        predicted = np.load(out / f"{utterance.id}.npy")
        recorded = cache.mel(utterance.wav_path).numpy()
        assert predicted.dtype == np.float32 and predicted.shape == recorded.shape
        # Teacher-forced prediction of an aligned model follows the recording: far closer than silence is.
        assert np.abs(predicted - recorded).mean() < 0.5 * np.abs(recorded - np.log(1e-5)).mean()


def test_vocoder_config_keys_are_checked() -> None:
    from trainer.config import config_from_dict

    with pytest.raises(ConfigError, match="key 'vocoder' must be griffin-lim or hifigan:GENERATOR"):
        config_from_dict({"vocoder": "melgan"})
    with pytest.raises(ConfigError, match="key 'vocoder_config' must give its config.json"):
        config_from_dict({"vocoder": "hifigan:g.pt"})


def test_training_samples_use_the_configured_vocoder(tmp_path: Path, demo_corpus: Path) -> None:
    from trainer.config import preset
    from trainer.training.loop import train

    checkpoint, config_file, _ = _public_generator(V2, tmp_path, parametrized=False)
    # A generator whose output is a constant tanh(5): sound no Griffin-Lim reconstruction can make.
    state = torch.load(checkpoint, weights_only=True)["generator"]
    state["conv_post.weight_g"].zero_()
    state["conv_post.bias"].fill_(5.0)
    torch.save({"generator": state}, checkpoint)
    config = preset("tiny").replace(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64,
                                    attention_dim=16, prenet_dim=32, decoder_rnn_dim=64, postnet_embedding_dim=16,
                                    batch_size=4, val_size=4, max_steps=2, val_interval=2, checkpoint_interval=2,
                                    torch_threads=2, fr_asr="off", fr_utterances=1,
                                    vocoder=f"hifigan:{checkpoint}", vocoder_config=str(config_file))
    train(config, demo_corpus, tmp_path / "run", show_progress=False)
    wav = tmp_path / "run" / "plots" / "step_000002_sample.wav"
    samples, _ = sf.read(str(wav))
    assert len(samples) > 0 and len(samples) % 256 == 0  # one hop per mel frame
    np.testing.assert_allclose(samples, np.tanh(5.0), atol=1e-3)
