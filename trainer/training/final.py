"""The final evaluation of a run (``trainer train`` ends with it) and of any checkpoint file (``trainer evaluate``).

Both score a checkpoint free-running on every held-out sentence with
``trainer.evaluation.final.evaluate_sentences``; this module finds the checkpoint, the
sentences and the stop gate's setting, and writes the ``final`` record of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from trainer.config import config_from_stored
from trainer.data.corpus import DataError, check_corpus, read_corpus, split_train_val
from trainer.data.dataset import TTSDataset
from trainer.evaluation.asr import vocabulary
from trainer.evaluation.final import Evaluation, evaluate_sentences
from trainer.model.architectures import build_model
from trainer.model.checkpoint import load_checkpoint
from trainer.text.cleaners import clean_text
from trainer.training.session import asr_scorer, pick_device
from trainer.training.state import TrainState

if TYPE_CHECKING:
    from trainer.training.session import Session

__all__ = ["evaluate_checkpoint", "final_evaluation"]


def final_evaluation(session: Session) -> Evaluation:
    """Score the run's selected checkpoint (best.pt, else last.pt) on every held-out sentence; write ``final``.

    The checkpoint is loaded into a model of its own (the session's is left as training left
    it); its stop gate runs as at the validation that saved it (``gate_progress`` at its step).
    """
    config, folder = session.config, session.folder
    path = folder.best if folder.best.is_file() else folder.last
    payload = load_checkpoint(path, map_location=session.device)
    model = build_model(config).to(session.device)
    model.load_state_dict(payload["model"])
    state = TrainState(base_lr=session.state.base_lr, frames_per_char=session.state.frames_per_char)
    state.restore(payload)
    metrics, scores = evaluate_sentences(model, session.val_set, config, session.device, state.frames_per_char,
                                         state.gate_progress(config.max_steps), band_range=session.band_range,
                                         asr=session.asr)
    evaluation = Evaluation(path.name, state.step, metrics, scores)
    folder.append_metrics(evaluation.record())
    return evaluation


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, *, every_utterance: bool = False,
                        sentences: int | None = None, device: str = "auto", asr: str | None = None,
                        seen_from: str | Path | None = None) -> Evaluation:
    """Return the final evaluation of the checkpoint file ``checkpoint`` on the corpus ``data``.

    The sentences are the held-out split of ``data`` as the checkpoint's run made it (its
    ``val_size``: pass the training corpus), or with ``every_utterance`` all usable ones (a
    corpus the run never saw); ``sentences`` keeps the first N of them. ``asr`` ("auto", "on",
    "off"; default the checkpoint's ``fr_asr``) adds ``fr_wer``/``fr_cer``, and ``fr_wer_seen``/
    ``fr_wer_unseen`` against the words of the run's training sentences: the training split of
    ``data`` itself, or with ``every_utterance`` those of ``seen_from`` (the run's corpus). Raises
    CheckpointError (an unreadable file), ConfigError (an asked-for recogniser is missing) and
    DataError (no usable utterance).
    """
    payload = load_checkpoint(checkpoint, map_location="cpu")
    config = config_from_stored(payload["config"], source=str(checkpoint))
    config = config.replace(device=device, **({"fr_asr": asr} if asr is not None else {}))
    report = check_corpus(data, lang=config.lang, min_seconds=config.min_seconds, max_seconds=config.max_seconds,
                          drop_unknown_chars=config.on_unknown_char == "drop")
    trained_on, usable = split_train_val(report.usable, config.val_size)
    if every_utterance:
        usable = report.usable
        trained_on = [] if seen_from is None else split_train_val(read_corpus(seen_from), config.val_size)[0]
    if not usable:
        raise DataError(report)
    dataset = TTSDataset.for_config(usable, config)
    torch_device = pick_device(config.device)
    model = build_model(config).to(torch_device)
    model.load_state_dict(payload["model"])
    state = TrainState(base_lr=0.0, frames_per_char=float(model.frames_per_char))
    state.restore(payload)
    seen = vocabulary([clean_text(item.text, config.lang) for item in trained_on]) if trained_on else None
    scorer, _ = asr_scorer(config, seen=seen)
    metrics, scores = evaluate_sentences(model, dataset, config, torch_device, state.frames_per_char,
                                         state.gate_progress(config.max_steps), sentences=sentences, asr=scorer)
    return Evaluation(Path(checkpoint).name, state.step, metrics, scores)
