"""The training loop: loss falls, exact resume, the non-finite guard, the callback door, data refusal."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import soundfile as sf
import torch

from trainer.config import TrainConfig, preset
from trainer.data.corpus import DataError
from trainer.errors import NonFiniteLossError
from trainer.evaluation import metric_registry
from trainer.model.checkpoint import load_checkpoint
from trainer.synthesis.infer import load_model, synthesize
from trainer.training.loop import train
from trainer.training.losses import TacotronLoss
from trainer.training.quality import QualityController
from trainer.training.quality_state import ControllerConfig

MICRO = dict(symbols_embedding_dim=32, encoder_embedding_dim=32, attention_rnn_dim=64, attention_dim=16,
             attention_location_n_filters=4, attention_location_kernel_size=7, prenet_dim=32, decoder_rnn_dim=64,
             postnet_embedding_dim=16)


def micro_config(**overrides) -> TrainConfig:
    """Return a tiny-preset config shrunk further so a step takes a fraction of a second."""
    base = dict(MICRO, batch_size=4, val_size=4, max_steps=6, val_interval=3, checkpoint_interval=3,
                log_interval=1, warmup_steps=2, torch_threads=2, fr_asr="off")
    return preset("tiny").replace(**{**base, **overrides})


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def test_short_training_learns_and_its_checkpoint_speaks(demo_corpus: Path, tmp_path: Path) -> None:
    config = micro_config(max_steps=40, val_interval=20, checkpoint_interval=20, learning_rate=3e-3)
    result = train(config, demo_corpus, tmp_path / "run", show_progress=False)
    assert result.step == 40 and not result.stopped_early and result.stop is None
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1]) | {"time": 0} == {"kind": "end", "step": 40, "stopped_by": None, "detection": None,
                                                   "reason": None, "time": 0}
    losses = [r["train_total"] for r in records(tmp_path / "run", "train")]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    vals = records(tmp_path / "run", "val")
    assert [v["step"] for v in vals] == [20, 40]
    for key in ("val_mel_postnet_l1", "tf_diagonality", "tf_focus", "tf_monotonicity", "tf_coverage",
                "tf_gate_balanced_accuracy", "val_gate", "val_guided_attention"):
        assert math.isfinite(vals[-1][key]), key
    assert vals[-1]["val_mel_postnet_l1"] < vals[0]["val_mel_postnet_l1"] * 1.05
    # Throughput figures of every logged step: data wait within the step time, frames of a full batch.
    steps = records(tmp_path / "run", "train")
    assert all(0.0 <= r["data_sec"] < r["sec_per_step"] for r in steps)
    lengths = [sf.info(str(w)).frames // 256 for w in (demo_corpus / "wavs").glob("*.wav")]
    batch = config.batch_size
    assert all(batch * min(lengths) <= r["frames"] <= batch * (max(lengths) + 1) for r in steps)
    assert len({r["frames"] for r in steps}) > 1  # bucketed batches of different lengths
    model, loaded = load_model(tmp_path / "run" / "checkpoints" / "best.pt")
    speech = synthesize(model, loaded, "the quick brown fox.", max_decoder_steps=120, griffin_lim_iters=8)
    assert speech.wav.abs().max() > 0.1  # normalised Griffin-Lim output of a real mel is not silence
    assert speech.wav.shape[0] > 256 * 2


def test_resume_continues_exactly(demo_corpus: Path, tmp_path: Path) -> None:
    # Scheduled sampling from step 0 makes the loss depend on the RNG: only an exact restore matches.
    config = micro_config(max_steps=6, tf_hold_steps=0, tf_decay_steps=1, tf_floor=0.5)
    train(config, demo_corpus, tmp_path / "straight", show_progress=False)
    train(config.replace(max_steps=3), demo_corpus, tmp_path / "split", show_progress=False)
    payload = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    assert payload["position"]["step"] == 3
    train(config, demo_corpus, tmp_path / "split", resume=True, show_progress=False)
    straight = {r["step"]: r["train_total"] for r in records(tmp_path / "straight", "train")}
    split = {r["step"]: r["train_total"] for r in records(tmp_path / "split", "train")}
    assert [split[s] for s in (4, 5, 6)] == [straight[s] for s in (4, 5, 6)]
    assert records(tmp_path / "split", "val")[-1]["val_mel_postnet_l1"] == \
        records(tmp_path / "straight", "val")[-1]["val_mel_postnet_l1"]


def test_nonfinite_steps_are_skipped_then_stop_the_run(demo_corpus: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    original = TacotronLoss.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        total, terms = original(self, *args, **kwargs)
        calls["n"] += 1
        return (total * math.nan, terms) if calls["n"] == 2 else (total, terms)

    monkeypatch.setattr(TacotronLoss, "forward", poisoned)
    result = train(micro_config(max_steps=4), demo_corpus, tmp_path / "one", show_progress=False)
    assert result.step == 4 and result.skipped_steps == 1
    assert [e["step"] for e in records(tmp_path / "one", "event") if e["event"] == "nonfinite_skip"] == [1]

    monkeypatch.setattr(TacotronLoss, "forward", lambda self, *a, **k: (original(self, *a, **k)[0] * math.inf, {}))
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        train(micro_config(max_steps=4, max_nonfinite_steps=3), demo_corpus, tmp_path / "all", show_progress=False)


def test_callback_is_the_reporting_door_and_can_stop(demo_corpus: Path, tmp_path: Path) -> None:
    seen: list[tuple[int, dict]] = []

    def callback(step: int, metrics: dict[str, float]) -> bool:
        seen.append((step, metrics))
        return step >= 4

    result = train(micro_config(max_steps=10, val_interval=2), demo_corpus, tmp_path / "run", callback,
                   show_progress=False)
    assert [s for s, _ in seen] == [2, 4]
    assert result.stopped_early and result.step == 4
    assert result.stop is not None and (result.stop.by, result.stop.detection) == ("callback", None)
    assert records(tmp_path / "run", "end") == [{"kind": "end", "step": 4, "stopped_by": "callback", "detection": None,
                                                  "reason": result.stop.reason,
                                                  "time": records(tmp_path / "run", "end")[0]["time"]}]
    assert "step 4" in result.stop.reason
    assert "tf_diagonality" in seen[0][1] and "val_mel_postnet_l1" in seen[0][1]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["position"]["step"] == 4


def test_warm_start_loads_weights_and_skips_a_foreign_embedding(demo_corpus: Path, tmp_path: Path) -> None:
    train(micro_config(max_steps=2), demo_corpus, tmp_path / "base", show_progress=False)
    base = tmp_path / "base" / "checkpoints" / "last.pt"
    payload = load_checkpoint(base)
    payload["symbol_set"] = "another-set"
    foreign = tmp_path / "foreign.pt"
    torch.save(payload, foreign)
    train(micro_config(max_steps=1), demo_corpus, tmp_path / "ft", warm_start=foreign, show_progress=False)
    events = [e for e in records(tmp_path / "ft", "event") if e["event"] == "warm_start"]
    assert "embedding.weight: symbol set differs" in events[0]["detail"]
    start = records(tmp_path / "ft", "start")[0]
    assert start["learning_rate"] == 1e-5  # warm start picks the fine-tuning profile


def test_corpus_with_blocking_problems_is_refused_unless_skipped(demo_corpus: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus, corpus)
    first_id = (corpus / "metadata.csv").read_text().split("|", 1)[0]
    (corpus / "wavs" / f"{first_id}.wav").unlink()
    with pytest.raises(DataError) as err:
        train(micro_config(max_steps=1), corpus, tmp_path / "run", show_progress=False)
    assert any(p.kind == "missing audio" and p.utterance == first_id for p in err.value.report.blocking)
    assert not (tmp_path / "run" / "checkpoints").exists()
    result = train(micro_config(max_steps=1, skip_bad_items=True), corpus, tmp_path / "run", show_progress=False)
    assert result.step == 1
    assert first_id in (tmp_path / "run" / "data_report.txt").read_text()


def test_cli_train_and_synth(demo_corpus: Path, tmp_path: Path) -> None:
    from trainer.cli import main
    from trainer.config import save_config

    save_config(micro_config(max_steps=2), tmp_path / "c.yaml")
    assert main(["train", "--data", str(demo_corpus), "--out", str(tmp_path / "run"), "--config",
                 str(tmp_path / "c.yaml"), "--quiet"]) == 0
    assert main(["train", "--data", str(demo_corpus), "--out", str(tmp_path / "run"), "--resume",
                 "--max-steps", "3", "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["position"]["step"] == 3
    wav = tmp_path / "out.wav"
    assert main(["synth", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--text", "hello.",
                 "--out", str(wav)]) == 0
    info = sf.info(str(wav))
    assert info.samplerate == 22050 and info.channels == 1 and info.frames > 0
    plain, enhanced = tmp_path / "plain.wav", tmp_path / "enhanced.wav"
    torch.manual_seed(0)  # prenet dropout at inference: same seed, same mel, so only the enhancer differs
    assert main(["synth", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--text", "hello.",
                 "--out", str(plain), "--no-enhance"]) == 0
    torch.manual_seed(0)
    assert main(["synth", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--text", "hello.",
                 "--out", str(enhanced), "--enhance"]) == 0
    assert sf.info(str(plain)).frames == sf.info(str(enhanced)).frames
    assert plain.read_bytes() != enhanced.read_bytes()
    torch.manual_seed(0)  # the default is the plain mel: the enhancer raised the word error rate
    assert main(["synth", "--checkpoint", str(tmp_path / "run" / "checkpoints" / "last.pt"), "--text", "hello.",
                 "--out", str(wav)]) == 0
    assert wav.read_bytes() == plain.read_bytes()


def _a_run_the_controller_stopped(corpus: Path, run: Path) -> str:
    """Train ``run`` 3 steps, then give its last.pt a controller that has asked to stop; return the stop's reason.

    A controller stop depends on how a run's figures move, which no short run fixes; this one is
    decided by the real controller on a scripted stalled objective and taken up by the run as any
    resumed controller state is.
    """
    train(micro_config(max_steps=3, val_interval=3, fr_utterances=0), corpus, run, show_progress=False)
    controller = QualityController(ControllerConfig(patience=1, alignment_warmup_steps=100, gate_judge_after_steps=100))
    for step in (1, 2):
        decisions = controller.observe(step, {"val_mel_postnet_l1": 1.0})
    assert [d.action for d in decisions] == ["stop"]
    payload = load_checkpoint(run / "checkpoints" / "last.pt")
    payload["quality"] = controller.state_dict()
    torch.save(payload, run / "checkpoints" / "last.pt")
    return f"no_improvement: {decisions[0].reason}"


def test_a_run_the_controller_stops_says_why_once(demo_corpus: Path, tmp_path: Path) -> None:
    why = _a_run_the_controller_stopped(demo_corpus, tmp_path / "run")
    seen: list[int] = []
    result = train(micro_config(max_steps=9, val_interval=3, fr_utterances=0), demo_corpus, tmp_path / "run",
                   lambda step, _: bool(seen.append(step)), resume=True, show_progress=False)
    assert result.step == 6 and seen == [6]  # stopped at its next validation; the callback still heard it
    assert result.stopped_early and result.stop is not None
    assert (result.stop.by, result.stop.detection, result.stop.reason) == ("controller", "no_improvement", why)
    assert why.startswith("no_improvement: val_mel_postnet_l1 not better than 1 (step 1)")
    ends = records(tmp_path / "run", "end")
    assert [(e["step"], e["stopped_by"], e["detection"], e["reason"]) for e in ends] == \
        [(3, None, None, None), (6, "controller", "no_improvement", why)]  # the first run ran to its max_steps
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["kind"] == "end"
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["position"]["step"] == 6


def test_cli_train_says_when_and_why_the_controller_stopped_it(demo_corpus: Path, tmp_path: Path, capsys) -> None:
    from trainer.cli import main

    why = _a_run_the_controller_stopped(demo_corpus, tmp_path / "run")
    assert main(["train", str(demo_corpus), "--out", str(tmp_path / "run"), "--resume", "--max-steps", "9",
                 "--quiet"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"stopped early at step 6 by the quality controller: {why}; best val_mel_postnet_l1 "), last
    assert main(["train", str(demo_corpus), "--out", str(tmp_path / "run"), "--resume", "--max-steps", "6",
                 "--quiet"]) == 0  # nothing left to train: it ends where it is, not stopped by anyone
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("finished at step 6;")


def test_a_frozen_ga_weight_is_never_changed_while_an_unfrozen_one_is_raised(demo_corpus: Path,
                                                                               tmp_path: Path) -> None:
    # Six steps from scratch: the attention is far from aligned at the first validation (step 3).
    config = micro_config(max_steps=6, val_interval=3, fr_utterances=0)
    train(config, demo_corpus, tmp_path / "free", show_progress=False)
    train(config.replace(controller_frozen_keys=["ga_weight"]), demo_corpus, tmp_path / "frozen", show_progress=False)
    raised = [q for q in records(tmp_path / "free", "quality") if q["action"] == "raise_guided_attention"]
    left = [q for q in records(tmp_path / "frozen", "quality") if q["detection"] == "misalignment"]
    assert [q["step"] for q in raised] == [3] and raised[0]["parameters"]["ga_boost"] == 2.0
    assert [(q["step"], q["action"], q["parameters"]["key"]) for q in left] == \
        [(3, "none_left_to_tuner", "ga_weight"), (6, "none_left_to_tuner", "ga_weight")]
    free = {r["step"]: r["ga_weight"] for r in records(tmp_path / "free", "train")}
    frozen = {r["step"]: r["ga_weight"] for r in records(tmp_path / "frozen", "train")}
    # The schedule's weight in both; the boost from the step after the validation on, in the free run only.
    assert [free[s] / frozen[s] for s in range(1, 7)] == pytest.approx([1, 1, 1, 2, 2, 2])
    assert load_checkpoint(tmp_path / "frozen" / "checkpoints" / "last.pt")["schedule"]["ga_boost"] == 1.0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--config", "{tmp}/missing.yaml"], "cannot read"),
        (["--config", "{tmp}/bad.yaml"], "unknown key 'learning_rat'"),
        (["--warm-start", "{tmp}/none.pt"], "warm-start checkpoint not found"),
        (["--resume"], "nothing to resume"),
    ],
)
def test_cli_train_bad_input_is_one_line_exit_2(demo_corpus: Path, tmp_path: Path, capsys, args, fragment) -> None:
    from trainer.cli import main

    (tmp_path / "bad.yaml").write_text("learning_rat: 1e-3\n")
    code = main(["train", "--data", str(demo_corpus), "--out", str(tmp_path / "run"), "--quiet",
                 *[a.format(tmp=tmp_path) for a in args]])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_validation_reports_free_running_quality_and_plots(demo_corpus: Path, tmp_path: Path) -> None:
    train(micro_config(max_steps=2, val_interval=2), demo_corpus, tmp_path / "run", show_progress=False)
    val = records(tmp_path / "run", "val")[-1]
    for key in ("fr_diagonality", "fr_focus", "fr_monotonicity", "fr_coverage", "fr_stop_error", "fr_hit_max_rate",
                "fr_early_stop_rate", "fr_run_on_rate", "quality_score", "fr_quality_score", "fr_mcd",
                "fr_length_ratio", "fr_out_of_range"):
        assert key in val and math.isfinite(val[key]), key
    assert 0.0 <= val["quality_score"] <= 1.0
    unregistered = [k for k in val if k not in ("kind", "step", "time") and not metric_registry.is_known(k)]
    assert unregistered == []  # every figure validation reports is declared once, in the registry
    names = sorted(p.name for p in (tmp_path / "run" / "plots").iterdir())
    assert names == ["step_000002_alignment_fr.png", "step_000002_alignment_tf.png", "step_000002_gate.png",
                     "step_000002_mel.png", "step_000002_sample.wav"]
    assert all((tmp_path / "run" / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names[:4])
    wav = sf.info(str(tmp_path / "run" / "plots" / names[4]))
    assert wav.samplerate == 22050 and wav.frames > 0


def test_phases_are_logged_at_their_boundaries(demo_corpus: Path, tmp_path: Path) -> None:
    train(micro_config(max_steps=7, val_interval=7, phases=True, controller=False, fr_utterances=0),
          demo_corpus, tmp_path / "run", show_progress=False)
    phases = [(e["step"], e["phase"], e["ga_weight"]) for e in records(tmp_path / "run", "event")
              if e["event"] == "phase"]
    assert phases == [(0, "pre_alignment", 10.0), (1, "alignment_learning", 3.0), (4, "quality_optimization", 1.0),
                      (6, "fine_tuning", 0.5)]
    ga = {r["step"]: r["ga_weight"] for r in records(tmp_path / "run", "train")}
    assert ga[1] == 10.0 and ga[2] == 3.0 and ga[7] == 0.5  # record "step" counts steps done


def test_controller_rolls_back_an_exploding_run(demo_corpus: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import trainer.training.validation as validation

    real_validate = validation.validate
    calls = {"n": 0}

    def exploding_on_third(*args, **kwargs):
        metrics, sample = real_validate(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            metrics["val_total"] = metrics["val_total"] * 100.0
        return metrics, sample

    monkeypatch.setattr(validation, "validate", exploding_on_third)
    train(micro_config(max_steps=6, val_interval=2, fr_utterances=0), demo_corpus, tmp_path / "run",
          show_progress=False)
    decisions = [q for q in records(tmp_path / "run", "quality") if q["detection"] == "exploding_loss"]
    assert decisions and decisions[0]["step"] == 6
    assert {d["action"] for d in decisions} >= {"rollback", "lower_learning_rate"}
    rollback = [e for e in records(tmp_path / "run", "event") if e["event"] == "rollback"]
    assert rollback and rollback[0]["to_step"] == 4  # the last validation judged healthy
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    good = load_checkpoint(tmp_path / "run" / "checkpoints" / "good.pt")
    assert all(torch.equal(last["model"][k], good["model"][k]) for k in good["model"])
    assert last["schedule"]["lr_scale"] == 0.5


def test_cli_plan_prints_classes_and_steps(demo_corpus: Path, capsys) -> None:
    from trainer.cli import main

    assert main(["plan", str(demo_corpus), "--batch-size", "4", "--grad-accum", "1"]) == 0
    out = capsys.readouterr().out
    assert "size class 'under 30 min': 5000 epochs" in out
    assert "steps: ceil(" in out and "24 utterances / (4 batch x 1 accumulation))" in out


def test_step_checkpoints_are_kept_on_request(demo_corpus: Path, tmp_path: Path) -> None:
    train(micro_config(max_steps=4, checkpoint_interval=2, val_interval=4, fr_utterances=0,
                       keep_step_checkpoints=True), demo_corpus, tmp_path / "run", show_progress=False)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*.pt"))
    assert names == ["step_000002.pt", "step_000004.pt"]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "step_000002.pt")["position"]["step"] == 2


def test_cli_internal_error_is_exit_1_and_debug_shows_the_traceback(demo_corpus: Path, tmp_path: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer import cli

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the trainer")

    import trainer.training.plan

    monkeypatch.setattr(trainer.training.plan, "plan_training", broken)
    assert cli.main(["plan", str(demo_corpus)]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: a bug in the trainer" in err and "--debug" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert cli.main(["--debug", "plan", str(demo_corpus)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: a bug in the trainer" in err
    # Bad input stays bad input: one line, exit 2, with or without --debug.
    assert cli.main(["--debug", "check-data", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_argument_errors_are_one_line_exit_2(capsys) -> None:
    from trainer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--max-steps", "many"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("trainer train: error:")


@pytest.mark.parametrize("name, pick", [("fr_mcd", min), ("tf_diagonality", max)])
def test_best_checkpoint_follows_the_chosen_metric_and_its_direction(demo_corpus: Path, tmp_path: Path, name: str,
                                                                     pick) -> None:
    run = tmp_path / "run"
    result = train(micro_config(max_steps=6, val_interval=2, best_metric=name, learning_rate=3e-3), demo_corpus,
                   run, show_progress=False)
    values = [v[name] for v in records(run, "val")]
    assert len(values) == 3 and len(set(values)) > 1
    assert result.best_metric == pick(values)
    assert load_checkpoint(run / "checkpoints" / "best.pt")["metrics"][name] == pick(values)


def test_best_metric_must_be_a_registered_metric_with_a_direction() -> None:
    from trainer.errors import ConfigError

    for bad in ("fr_mcdd", "lr"):
        with pytest.raises(ConfigError, match="key 'best_metric' must name a metric with a direction"):
            micro_config(best_metric=bad)


def test_a_warm_started_run_scores_free_running_with_a_trained_gate(demo_corpus: Path, tmp_path: Path) -> None:
    from trainer.training.state import TrainState

    state = TrainState(base_lr=1e-3, frames_per_char=5.0, step=30)
    assert state.gate_progress(120) == 0.25  # from scratch: the share of the budget done
    state.warm_started = True
    assert state.gate_progress(120) == 1.0  # the base's gate comes trained
    config = micro_config(max_steps=2, val_interval=2, fr_utterances=0)
    train(config, demo_corpus, tmp_path / "base", show_progress=False)
    train(config, demo_corpus, tmp_path / "tuned", warm_start=tmp_path / "base" / "checkpoints" / "last.pt",
          show_progress=False)
    assert load_checkpoint(tmp_path / "base" / "checkpoints" / "last.pt")["schedule"]["warm_started"] is False
    tuned = load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")
    assert tuned["schedule"]["warm_started"] is True
    # A resumed fine-tuning run stays warm-started.
    train(config.replace(max_steps=4, val_interval=4), demo_corpus, tmp_path / "tuned", resume=True,
          show_progress=False)
    assert load_checkpoint(tmp_path / "tuned" / "checkpoints" / "last.pt")["schedule"]["warm_started"] is True


def test_resume_falls_back_past_an_unreadable_last_checkpoint(demo_corpus: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    config = micro_config(max_steps=4, val_interval=4, checkpoint_interval=2, keep_step_checkpoints=True,
                          fr_utterances=0)
    train(config, demo_corpus, run, show_progress=False)
    (run / "checkpoints" / "last.pt").write_bytes(b"cut short by a crash")
    (run / "checkpoints" / ".last.pt.x1y2.tmp").write_bytes(b"a killed writer's leftovers")
    train(config.replace(max_steps=6, val_interval=6), demo_corpus, run, resume=True, show_progress=False)
    fallback = [r for r in records(run, "event") if r["event"] == "resume_fallback"]
    assert len(fallback) == 1 and fallback[0]["checkpoint"] == "step_000004.pt" and fallback[0]["step"] == 4
    assert "last.pt: not a readable checkpoint" in fallback[0]["skipped"][0]
    assert "resuming from step_000004.pt (step 4)" in capsys.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["position"]["step"] == 6
    assert not list((run / "checkpoints").glob(".*.tmp"))  # cleaned at the start


def test_resume_with_no_readable_checkpoint_is_one_line(demo_corpus: Path, tmp_path: Path, capsys) -> None:
    from trainer.cli import main

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"garbage")
    (run / "config.yaml").write_text("max_steps: 4\n")
    code = main(["train", "--data", str(demo_corpus), "--out", str(run), "--resume", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no checkpoint to resume from" in err


def test_a_stop_request_saves_the_step_and_resume_goes_on_from_it(demo_corpus: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import trainer.training.session as session
    from trainer.errors import TrainingInterrupted

    stop = threading.Event()
    real_collate, drawn = session.collate, []

    def collate_then_signal(*args, **kwargs):  # a signal arrives while step 3 trains
        drawn.append(1)
        if len(drawn) == 3:
            stop.set()
        return real_collate(*args, **kwargs)

    monkeypatch.setattr(session, "collate", collate_then_signal)
    config = micro_config(max_steps=8, val_interval=8, checkpoint_interval=8, fr_utterances=0)
    with pytest.raises(TrainingInterrupted) as info:
        train(config, demo_corpus, tmp_path / "run", show_progress=False, stop=stop)
    assert info.value.step == 3  # the step in progress finished and was saved; none was lost
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["position"]["step"] == 3
    assert [r["step"] for r in records(tmp_path / "run", "event") if r["event"] == "interrupted"] == [3]
    monkeypatch.setattr(session, "collate", real_collate)
    train(config, demo_corpus, tmp_path / "run", resume=True, show_progress=False)
    assert [r["step"] for r in records(tmp_path / "run", "train")] == list(range(1, 9))


def test_best_pt_follows_the_selection_metric_and_the_run_ends_with_its_final_evaluation(
        demo_corpus: Path, tmp_path: Path) -> None:
    from trainer.training.final import evaluate_checkpoint

    config = micro_config(max_steps=6, val_interval=2, checkpoint_interval=2, fr_utterances=2, val_size=4,
                          controller=False)
    result = train(config, demo_corpus, tmp_path / "run", show_progress=False)
    vals = records(tmp_path / "run", "val")
    best = min(vals, key=lambda r: r["fr_mcd_sl"])  # the selection metric: fr_mcd_sl on the 2 shortest sentences
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert saved["position"]["step"] == best["step"] and result.best_metric == pytest.approx(best["fr_mcd_sl"])
    kinds = [r["kind"] for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())]
    assert kinds[-2:] == ["final", "end"]
    final = records(tmp_path / "run", "final")[0]
    assert (final["checkpoint"], final["step"], final["sentences"]) == ("best.pt", best["step"], 4)
    assert result.final is not None and result.final.metrics["fr_mcd_sl"] == final["fr_mcd_sl"]
    # The same checkpoint scored again in another process's way (trainer evaluate) gets the same figure.
    again = evaluate_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", demo_corpus, device="cpu", asr="off")
    assert again.sentences == 4 and again.step == best["step"]
    assert again.metrics["fr_mcd_sl"] == pytest.approx(final["fr_mcd_sl"], rel=1e-6)


def test_a_run_the_callback_stops_skips_the_final_evaluation(demo_corpus: Path, tmp_path: Path) -> None:
    result = train(micro_config(max_steps=6, val_interval=2, fr_utterances=2), demo_corpus, tmp_path / "run",
                   lambda step, _: True, show_progress=False)
    assert result.stop is not None and result.final is None and records(tmp_path / "run", "final") == []
