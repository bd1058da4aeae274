"""Checkpoints: atomic writes, safe loading, RNG round trip, warm-start reports."""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.config import preset
from trainer.fileio import atomic_write
from trainer.model.checkpoint import (
    CheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    warm_start,
)
from trainer.model.tacotron2 import Tacotron2

MICRO = dict(symbols_embedding_dim=16, encoder_embedding_dim=16, attention_rnn_dim=16, attention_dim=8,
             attention_location_n_filters=2, attention_location_kernel_size=3, prenet_dim=8, decoder_rnn_dim=16,
             postnet_embedding_dim=8)


def model(**overrides) -> Tacotron2:
    return Tacotron2(preset("tiny").replace(**{**MICRO, **overrides}))


def save(path: Path, net: torch.nn.Module) -> Path:
    return save_checkpoint(path, model=net, optimizer=None, config=preset("tiny").replace(**MICRO).to_dict(),
                           position={"step": 5, "epoch": 1, "batch": 2}, schedule={"ga_boost": 1.0})


def test_round_trip_with_weights_only(tmp_path: Path) -> None:
    net = model()
    save(tmp_path / "a.pt", net)
    payload = load_checkpoint(tmp_path / "a.pt")
    assert payload["position"] == {"step": 5, "epoch": 1, "batch": 2}
    for name, tensor in net.state_dict().items():
        assert torch.equal(payload["model"][name], tensor)


def test_failed_write_keeps_the_previous_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "last.pt"
    save(target, model())
    before = target.read_bytes()

    def crash(handle) -> None:
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, crash)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_round_trip() -> None:
    state = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)
    set_rng_state(state)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_warm_start_skips_mismatched_shapes_and_reports(tmp_path: Path) -> None:
    source = model()
    save(tmp_path / "src.pt", source)
    target = model(postnet_embedding_dim=12)
    report = warm_start(target, tmp_path / "src.pt")
    assert torch.equal(target.embedding.weight, source.embedding.weight)
    assert any(name.startswith("postnet.") for name in report.skipped)
    assert all("shape" in why for why in report.skipped.values())
    assert "skipped" in report.line()


def test_metrics_files_are_read_whole_lines_only(tmp_path: Path) -> None:
    from trainer.fileio import JsonlTail, read_jsonl

    path = tmp_path / "metrics.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == [] and read_jsonl(path) == []  # not written yet
    path.write_text('{"step": 1}\n{"step": 2}\n{"st')  # the last line is being written
    assert tail.read_new() == [{"step": 1}, {"step": 2}] and not tail.read_new()
    with path.open("a") as handle:
        handle.write('ep": 3}\n')
    assert tail.read_new() == [{"step": 3}] and tail.seen_any
    path.write_text('{"step": 1}\ncut by a kill\n{"step": 5}\n')
    assert [record for _, record in read_jsonl(path)] == [{"step": 1}, {"step": 5}]
    assert JsonlTail(path, offset=10_000).read_new() == []  # an offset past a rewritten file's end


def test_a_checkpoint_from_before_text_frontend_still_reads_characters(tmp_path: Path) -> None:
    # Written before the key existed (every model read characters then): today's default is phonemes,
    # and reading the old checkpoint with it would index a different symbol table.
    from trainer.synthesis.infer import load_model, synthesize
    from trainer.text.encode import text_to_ids
    from trainer.text.symbols import SYMBOLS

    config = preset("tiny").replace(**MICRO, text_frontend="characters", max_decoder_steps=6).to_dict()
    del config["model"]["text_frontend"]
    net = model(text_frontend="characters")
    path = save_checkpoint(tmp_path / "old.pt", model=net, optimizer=None, config=config,
                           position={"step": 5, "epoch": 1, "batch": 2}, schedule={})
    loaded, read = load_model(path)
    assert read.model.text_frontend == loaded.text_frontend == "characters"
    assert loaded.state_dict()["embedding.weight"].shape[0] == len(SYMBOLS)
    speech = synthesize(loaded, read, "Old times.", griffin_lim_iters=1)
    assert speech.alignment.shape[1] == len(text_to_ids("Old times.", lang="en"))
