"""Batches: length-bucketed batch order, collation (padding, masks, stop targets) and a prefetcher.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from trainer.audio import mel as audio
from trainer.data.dataset import Example


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                     shuffle: bool = True) -> list[list[int]]:
    """Return the batches (lists of dataset indices) of one epoch, grouping similar lengths.

    Indices are shuffled, cut into buckets of 8 batches, sorted by length inside each
    bucket and batched, then the batch order is shuffled: little padding, still random.
    Deterministic in (seed, epoch), which is what makes ``--resume`` exact.
    """
    order = list(range(len(lengths)))
    rng = random.Random(seed * 1_000_003 + epoch)
    if shuffle:
        rng.shuffle(order)
    bucket = batch_size * 8
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = sorted(order[start:start + bucket], key=lambda i: lengths[i])
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    if shuffle:
        rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    """A padded batch. Shapes: B utterances, N tokens, S decoder steps, F = S * r frames."""

    ids: list[str]
    text: torch.Tensor  # (B, N) long, 0-padded
    text_lens: torch.Tensor  # (B,) long
    mels: torch.Tensor  # (B, 80, F) float, padded with log(1e-5) (silence)
    mel_lens: torch.Tensor  # (B,) true frame counts
    out_lens: torch.Tensor  # (B,) true decoder steps = ceil(mel_lens / r)
    gate_targets: torch.Tensor  # (B, S) float: 1 at each utterance's last decoder step, else 0

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return self.text, self.text_lens, self.mels, self.mel_lens, self.out_lens, self.gate_targets

    def to(self, device: torch.device | str) -> Batch:
        """Return the batch with every tensor on ``device`` (copies from pinned memory do not block)."""
        return Batch(self.ids, *(t.to(device, non_blocking=True) for t in self._tensors()))

    def pin_memory(self) -> Batch:
        """Return the batch in page-locked host memory, from which a CUDA copy runs asynchronously."""
        return Batch(self.ids, *(t.pin_memory() for t in self._tensors()))


class Prefetcher:
    """Hands out batches by their dataset indices; on CUDA it prepares the next one while the GPU works.

    ``get(indices, following)`` returns the batch of ``indices`` on ``device``. On CUDA a
    single background thread collates ``following`` into pinned memory meanwhile, so the
    step after this one finds its batch ready and copies it without blocking. On the CPU
    everything happens in the caller's thread: a helper thread would only take a core from
    the step. The batches and their order are the same either way.
    """

    def __init__(self, make: Callable[[list[int]], Batch], device: torch.device) -> None:
        self._make = make
        self._device = device
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="prefetch") if device.type == "cuda" else None
        self._pending: tuple[tuple[int, ...], Future[Batch]] | None = None

    def get(self, indices: list[int], following: list[int] | None) -> Batch:
        """Return the batch of ``indices`` on the device and start preparing ``following`` (None: nothing)."""
        pending, self._pending = self._pending, None
        batch = pending[1].result() if pending is not None and pending[0] == tuple(indices) else self._host(indices)
        if self._pool is not None and following is not None:
            self._pending = (tuple(following), self._pool.submit(self._host, following))
        return batch.to(self._device)

    def close(self) -> None:
        """Stop the background thread (a batch being prepared is finished, then dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending = None

    def _host(self, indices: list[int]) -> Batch:
        batch = self._make(indices)
        return batch.pin_memory() if self._pool is not None else batch


def collate(examples: list[Example], reduction_factor: int = 1) -> Batch:
    """Return a Batch from examples: padding, lengths and stop-gate targets per decoder step."""
    r = reduction_factor
    text_lens = torch.tensor([len(e.text_ids) for e in examples], dtype=torch.long)
    mel_lens = torch.tensor([e.mel.shape[-1] for e in examples], dtype=torch.long)
    out_lens = (mel_lens + r - 1) // r
    n_mels = examples[0].mel.shape[0]
    steps = int(out_lens.max())
    text = torch.zeros(len(examples), int(text_lens.max()), dtype=torch.long)
    mels = torch.full((len(examples), n_mels, steps * r), math.log(audio.LOG_CLAMP))
    gate = torch.zeros(len(examples), steps)
    for row, example in enumerate(examples):
        text[row, : len(example.text_ids)] = example.text_ids
        mels[row, :, : example.mel.shape[-1]] = example.mel
        gate[row, out_lens[row] - 1] = 1.0
    return Batch([e.id for e in examples], text, text_lens, mels, mel_lens, out_lens, gate)

