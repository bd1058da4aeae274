"""GPU slots: the places a worker runs its trials, one trial per slot at a time.

A Tacotron2 step at the tiny preset's batch leaves a large GPU mostly idle (its kernels are
short and launched one after another), so several trials can share one GPU: measured on an
H200, four tiny trials ran each at the speed of one alone. ``--gpus 0:4`` makes four slots
on GPU 0, ``--gpus 0,1 --trials-per-gpu 2`` two on each of GPUs 0 and 1. A slot is named
``GPU#INDEX`` when its GPU has several (``0#2``), plainly ``GPU`` when it has one, so the
one-trial-per-GPU spelling and names stay as they were. Each slot is a unit of the worker's
pool: a trial holds one from start to end, and a trial that fails (out of memory included)
gives back only its own.

Trials that share a machine share its CPU cores too: ``threads_per_trial`` divides them.
"""

from __future__ import annotations

import os
import queue

from tuner.errors import TunerError

SLOT_MARK = "#"  # between a GPU's id and a slot's index: 0#2
COUNT_MARK = ":"  # in --gpus: 0:4 asks for four slots on GPU 0
MAX_TRIALS_PER_GPU = 64  # more would starve each trial of CPU cores and GPU memory alike


def parse_slots(text: str | None, trials_per_gpu: int = 1) -> list[str] | None:
    """Return the slots of ``--gpus`` (None when not given); TunerError naming the flag and value otherwise.

    ``0,1`` is one slot per GPU (times ``trials_per_gpu``); ``0:4`` four on GPU 0; ``0:4,1:2``
    may mix counts. A GPU listed twice is refused (ask for more slots with a count instead).

    >>> parse_slots("0,1"), parse_slots("0:3"), parse_slots("2", trials_per_gpu=2)
    (['0', '1'], ['0#0', '0#1', '0#2'], ['2#0', '2#1'])
    """
    if text is None:
        return None
    if not 1 <= trials_per_gpu <= MAX_TRIALS_PER_GPU:
        raise TunerError(f"--trials-per-gpu must be 1..{MAX_TRIALS_PER_GPU}, got {trials_per_gpu}")
    counts: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",")):
        gpu, mark, count = part.partition(COUNT_MARK)
        if not gpu.isdigit() or (mark and not count.isdigit()):
            raise TunerError(f"--gpus {text!r}: expected GPU numbers separated by commas, each optionally with "
                             f"{COUNT_MARK}TRIALS (e.g. 0,1 or 0{COUNT_MARK}4)")
        if gpu in counts:
            raise TunerError(f"--gpus {text!r}: GPU {gpu} is listed twice (ask for several trials on it with "
                             f"{gpu}{COUNT_MARK}N)")
        per_gpu = int(count) if mark else trials_per_gpu
        if not 1 <= per_gpu <= MAX_TRIALS_PER_GPU:
            raise TunerError(f"--gpus {text!r}: trials per GPU must be 1..{MAX_TRIALS_PER_GPU}, got {per_gpu}")
        counts[gpu] = per_gpu
    return [gpu if n == 1 else f"{gpu}{SLOT_MARK}{i}" for gpu, n in counts.items() for i in range(n)]


def gpu_of(slot: str) -> str:
    """Return the GPU id of ``slot`` (what the trial's child sees as ``CUDA_VISIBLE_DEVICES``).

    >>> gpu_of("3"), gpu_of("0#2")
    ('3', '0')
    """
    return slot.partition(SLOT_MARK)[0]


def threads_per_trial(slots: int, cores: int | None = None) -> int:
    """Return the CPU threads each of ``slots`` concurrent trials gets from ``cores`` (default: this process's).

    >>> threads_per_trial(4, cores=16), threads_per_trial(8, cores=4)
    (4, 1)
    """
    available = cores if cores is not None else len(os.sched_getaffinity(0))
    return max(1, available // max(1, slots))


class SlotPool:
    """The slots of one worker: ``take()`` blocks until one is free, ``give_back(slot)`` frees it.

    A slot is held by one trial at a time; each is handed out again only after it is given back.
    """

    def __init__(self, slots: list[str]) -> None:
        if len(set(slots)) != len(slots):
            raise ValueError(f"a slot is listed twice: {slots}")
        self._free: queue.Queue[str] = queue.Queue()
        for slot in slots:
            self._free.put(slot)
        self.size = len(slots)
        self.per_gpu = max(sum(1 for s in slots if gpu_of(s) == gpu_of(slot)) for slot in slots) if slots else 0

    def take(self) -> str:
        """Return a free slot, waiting for one."""
        return self._free.get()

    def give_back(self, slot: str) -> None:
        """Free ``slot`` for the next trial."""
        self._free.put(slot)
