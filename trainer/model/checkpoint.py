"""Checkpoints: atomic save, safe load (weights_only=True), resume state and warm start.

A checkpoint is a dict of tensors and plain values only, so ``torch.load(...,
weights_only=True)`` can read it: model and optimiser state, the training position
(step, epoch, batch within the epoch), schedule state, RNG states and the config.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from trainer.errors import CheckpointError
from trainer.fileio import atomic_write_bytes
from trainer.model.contract import TEXT_EMBEDDING, AcousticModel
from trainer.model.foreign import NVIDIA, SMART_TUNER, layout_of, rename
from trainer.text.symbols import LEGACY_TEXT_FRONTEND, symbol_set_id

FORMAT_VERSION = 1


def rng_state() -> dict[str, Any]:
    """Return the Python, NumPy and torch (CPU and CUDA) RNG states as plain values and tensors."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].copy()), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore RNG states saved by ``rng_state``.

    Every state goes through the CPU: a checkpoint loaded with ``map_location="cuda"`` puts
    these byte tensors on the GPU, where neither NumPy nor the generators take them.
    """
    random.setstate(_as_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    config: dict[str, Any], position: dict[str, int], schedule: dict[str, float],
                    metrics: dict[str, float] | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint atomically (temp file + rename) and return its path.

    ``config`` is the whole TrainConfig as a dict; its ``model`` part (the network's shape)
    is also stored on its own as ``model_config``. ``position`` holds step, epoch and batch
    (within the epoch); ``schedule`` holds the mutable schedule values (for example the
    controller's multipliers); ``extra`` adds top-level entries of plain values (for
    example the quality controller's state).
    """
    payload = {
        "format_version": FORMAT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "config": config,
        "model_config": dict(config.get("model", {})),
        "position": dict(position),
        "schedule": dict(schedule),
        "metrics": dict(metrics or {}),
        "rng": rng_state(),
        "symbol_set": symbol_set_id(config.get("model", {}).get("text_frontend", LEGACY_TEXT_FRONTEND)),
        **(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_any(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """Return whatever ``path`` holds, read with ``weights_only=True``; CheckpointError when unreadable.

    Our checkpoints, foreign ones (``trainer.model.foreign``) and vocoder generators all come through here.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first[:160]})") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Return a checkpoint's dict, read with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    payload = load_any(path, map_location)
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path}: not a Smart Tuner checkpoint (no model/config)")
    return payload


def save_inference_checkpoint(source: str | Path, target: str | Path) -> Path:
    """Write ``source`` without what only resuming needs (optimiser, RNG, controller state) to ``target``.

    What synthesis, warm starts and export need stays: weights, config, position, metrics,
    symbol set. A third of the size with Adam's two moment buffers gone; what a tracking
    server stores per trial.
    """
    payload = load_checkpoint(source)
    slim = {key: value for key, value in payload.items() if key not in ("rng", "quality")}
    slim["optimizer"] = None
    buffer = io.BytesIO()
    torch.save(slim, buffer)
    atomic_write_bytes(Path(target), buffer.getvalue())
    return Path(target)


RESUMABLE_KEYS = ("model", "optimizer", "position", "schedule", "rng")  # what an exact resume needs


def resume_candidates(checkpoints: Path) -> list[Path]:
    """Return the checkpoints a resume may use from the folder ``checkpoints``, newest state first.

    last.pt, then the step checkpoints newest first (``keep_step_checkpoints``), then good.pt
    (the last validation the quality controller found healthy), then best.pt. Each of them
    holds the whole training state, so any can be resumed from exactly.
    """
    steps = sorted(checkpoints.glob("step_*.pt"), key=lambda p: p.stem, reverse=True)
    named = [checkpoints / "last.pt", *steps, checkpoints / "good.pt", checkpoints / "best.pt"]
    return [path for path in named if path.is_file()]


def load_resumable(checkpoints: Path, map_location: str | torch.device = "cpu",
                   ) -> tuple[Path, dict[str, Any], list[str]]:
    """Return (the checkpoint used, its payload, one line per unreadable one skipped) for a resume.

    Tries ``resume_candidates`` in order; a file that cannot be read (cut by a crash, damaged
    on disk, or missing the training state) is skipped with its reason. CheckpointError when
    none is usable.
    """
    skipped: list[str] = []
    for path in resume_candidates(checkpoints):
        try:
            payload = load_checkpoint(path, map_location=map_location)
        except CheckpointError as err:
            skipped.append(str(err))
            continue
        missing = [key for key in RESUMABLE_KEYS if payload.get(key) is None]
        if missing:
            skipped.append(f"{path}: not a training state (no {', '.join(missing)})")
            continue
        return path, payload, skipped
    detail = f" ({'; '.join(skipped)})" if skipped else ""
    raise CheckpointError(f"{checkpoints}: no checkpoint to resume from{detail}")


@dataclass
class WarmStartReport:
    """What a warm start loaded and what it skipped, with reasons."""

    loaded: int
    skipped: dict[str, str]

    def line(self) -> str:
        """Return a one-line summary."""
        if not self.skipped:
            return f"warm start: loaded all {self.loaded} tensors"
        reasons = "; ".join(f"{name}: {why}" for name, why in sorted(self.skipped.items()))
        return f"warm start: loaded {self.loaded} tensors, skipped {len(self.skipped)} ({reasons})"


def check_warm_start(path: str | Path) -> str:
    """Return the layout of warm-start checkpoint ``path`` (``trainer.model.foreign``); CheckpointError when none.

    Training calls it before writing anything, so a wrong file leaves no run folder behind.
    """
    path = Path(path)
    layout = layout_of(load_any(path))
    if layout is None:
        raise CheckpointError(f"{path}: not a checkpoint of ours, of NVIDIA/tacotron2 ('state_dict') or of Coqui "
                              "TTS's Tacotron2 ('model')")
    return layout


def warm_start(model: AcousticModel, path: str | Path) -> WarmStartReport:
    """Load a checkpoint's weights into ``model`` (not its optimiser or position) and report.

    A parameter the model declares a ``TEXT_EMBEDDING`` (its rows are the symbol set's) is
    skipped when the checkpoint's symbol set differs from ours; any tensor whose shape
    differs (another model size) is skipped too and named in the report.

    ``path`` may also be NVIDIA/tacotron2's or Coqui TTS's Tacotron2 checkpoint
    (``trainer.model.foreign``): its tensors are renamed to ours first, and those without a
    counterpart are named in the report. NVIDIA's embedding loads into a model reading
    ``text_frontend: nvidia`` (the same 148 symbols).
    """
    payload = load_any(Path(path))
    layout = layout_of(payload) or check_warm_start(path)  # the latter raises the one-line error
    skipped: dict[str, str] = {}
    source: dict[str, torch.Tensor]
    if layout == SMART_TUNER:
        source = payload["model"]
        same_symbols = payload.get("symbol_set") == symbol_set_id(model.text_frontend)
    else:
        source, skipped = rename(payload, layout)
        same_symbols = layout == NVIDIA and model.text_frontend == NVIDIA
    target = model.state_dict()
    roles = model.parameter_roles()
    chosen = {}
    for name, tensor in source.items():
        if name not in target:
            skipped[name] = "not in this model"
        elif roles.get(name) == TEXT_EMBEDDING and not same_symbols:
            skipped[name] = "symbol set differs"
        elif tensor.shape != target[name].shape:
            skipped[name] = f"shape {tuple(tensor.shape)} != {tuple(target[name].shape)}"
        else:
            chosen[name] = tensor
    model.load_state_dict(chosen, strict=False)
    return WarmStartReport(loaded=len(chosen), skipped=skipped)
