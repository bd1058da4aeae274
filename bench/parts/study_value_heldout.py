"""bench/study_value.py's held-out scoring: a configuration retrained with fresh seeds, its best checkpoint scored
on sentences no trial saw, and whether the winner beats the defaults beyond the seed spread."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from harness.stats import seed_stats
from harness.training import median_sec_per_step
from sections.study_value import Retraining

OBJECTIVE = "fr_mcd"  # what the space ranks trials by, and what the held-out sentences are scored on
SCORING_SEED = 0  # prenet dropout stays on at inference: every checkpoint is scored with the same draws
HELDOUT_KEYS = ("fr_mcd", "fr_stop_error", "fr_diagonality", "fr_hit_max_rate", "fr_length_ratio",
                "fr_out_of_range")


def heldout_indices(heldout: Path, corpus: Path) -> tuple[list[int], int]:
    """Return (indices of the held-out utterances whose text is not in ``corpus``, how many were left out)."""
    from trainer.data.corpus import read_corpus

    seen = {u.text.strip().lower() for u in read_corpus(corpus)}
    items = read_corpus(heldout)
    keep = [i for i, u in enumerate(items) if u.text.strip().lower() not in seen]
    return keep, len(items) - len(keep)


def score_checkpoint(checkpoint: Path, heldout: Path, indices: list[int], corpus: Path,
                     device: str) -> dict[str, float]:
    """Return the held-out free-running figures (``HELDOUT_KEYS``) of ``checkpoint``'s model.

    Every held-out sentence in ``indices`` is synthesised from text alone (adaptive stop gate
    at full progress) and compared with its recording; the mel range is the fine-tuning
    corpus's training split's.
    """
    import torch

    from trainer.data.corpus import read_corpus
    from trainer.data.dataset import TTSDataset
    from trainer.evaluation.validate import band_range, free_running
    from trainer.synthesis.infer import load_model
    from trainer.training.session import load_data

    model, config = load_model(checkpoint, device)
    dataset = TTSDataset.for_config(read_corpus(heldout), config)
    train_set = load_data(config, corpus, False)[0]
    devices = [torch.device(device).index or 0] if device == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(SCORING_SEED)
        metrics, _ = free_running(model, dataset, indices, config, torch.device(device),
                                  float(model.frames_per_char), progress=1.0, band_range=band_range(train_set))
    return {k: round(float(metrics[k]), 4) for k in HELDOUT_KEYS if k in metrics}


def retrain(spec: dict[str, Any]) -> Retraining:
    """Train one configuration (``spec``: space, params, seed, paths) and score its best checkpoint held out.

    Runs in a fresh process. Returns {"seed", "val_best", "best_step", "heldout", "wall_s",
    "median_sec_per_step"}: ``val_best`` is the best validation ``fr_mcd`` (what a trial's value is).
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from trainer.training.loop import train
    from tuner.space.load import load_space

    space = load_space(Path(spec["space"]))
    config = space.build_config(spec["params"], max_steps=spec["max_steps"]).replace(seed=spec["seed"])
    run_dir = Path(spec["run_dir"])
    history: list[tuple[int, float]] = []

    def record(step: int, metrics: dict[str, float]) -> bool:
        history.append((step, float(metrics.get(OBJECTIVE, math.nan))))
        return False

    started = time.perf_counter()
    result = train(config, spec["corpus"], run_dir, callback=record, warm_start=spec["warm_start"],
                   show_progress=False)
    wall = time.perf_counter() - started
    finite = [(v, s) for s, v in history if math.isfinite(v)]
    checkpoint = run_dir / "checkpoints" / "best.pt"
    heldout = score_checkpoint(checkpoint if checkpoint.is_file() else run_dir / "checkpoints" / "last.pt",
                               Path(spec["heldout"]), spec["indices"], Path(spec["corpus"]), spec["device"])
    return {"seed": spec["seed"], "val_best": round(min(finite)[0], 4) if finite else None,
            "best_step": min(finite)[1] if finite else None, "steps": result.step, "heldout": heldout,
            "wall_s": round(wall, 1),
            "median_sec_per_step": median_sec_per_step(run_dir)}


def beats_defaults(winner: list[float], defaults: list[float], winner_is_defaults: bool) -> tuple[bool | None, str]:
    """Return (verdict, reason): does the winner's held-out ``fr_mcd`` (dB, per seed) beat the defaults'?

    Yes only when the winner's worst seed is below the defaults' best seed (lower is better);
    None when either side has fewer than two seeds (no spread to go beyond).
    """
    if winner_is_defaults:
        return False, "no: the study's best trial is the defaults' own configuration"
    if not winner or not defaults:
        return None, "not measured: a side has no scored seed"
    w, d = seed_stats(winner), seed_stats(defaults)
    gap = d["mean"] - w["mean"]
    spread = max(w["max"] - w["min"], d["max"] - d["min"])
    numbers = (f"winner {w['mean']:.3f} dB ({w['min']:.3f}–{w['max']:.3f}), defaults {d['mean']:.3f} dB "
               f"({d['min']:.3f}–{d['max']:.3f}); difference of means {gap:+.3f} dB against a seed range of "
               f"{spread:.3f} dB")
    if w["n"] < 2 or d["n"] < 2:
        return None, f"not decidable: one seed on a side gives no spread ({numbers})"
    if w["max"] < d["min"]:
        return True, f"yes: the winner's worst seed beats the defaults' best ({numbers})"
    if w["mean"] >= d["mean"]:
        return False, f"no: the winner is not better on held-out sentences ({numbers})"
    return False, f"no: better on average but within the seed spread ({numbers})"
