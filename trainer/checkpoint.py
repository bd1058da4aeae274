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

from trainer.contract import TEXT_EMBEDDING, AcousticModel
from trainer.errors import CheckpointError
from trainer.fileio import atomic_write_bytes
from trainer.text import symbol_set_id

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
    """Restore RNG states saved by ``rng_state``."""
    random.setstate(_as_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
        "symbol_set": symbol_set_id(),
        **(extra or {}),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Return a checkpoint's dict, read with ``weights_only=True`` (no arbitrary code runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first[:160]})") from None
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path}: not a Smart Tuner checkpoint (no model/config)")
    return payload


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


def warm_start(model: AcousticModel, path: str | Path) -> WarmStartReport:
    """Load a checkpoint's weights into ``model`` (not its optimiser or position) and report.

    A parameter the model declares a ``TEXT_EMBEDDING`` (its rows are the symbol set's) is
    skipped when the checkpoint's symbol set differs from ours; any tensor whose shape
    differs (another model size) is skipped too and named in the report.
    """
    payload = load_checkpoint(path)
    source: dict[str, torch.Tensor] = payload["model"]
    target = model.state_dict()
    roles = model.parameter_roles()
    skipped: dict[str, str] = {}
    same_symbols = payload.get("symbol_set") == symbol_set_id()
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
