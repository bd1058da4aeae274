"""``--gpus claim``: a worker takes one free GPU of its machine for as long as it lives.

Docker Compose gives every replica of a service with a ``count: 1`` GPU reservation the same
first GPU (docker/compose#11863), so ``--scale worker=N`` would stack N workers on GPU 0. The
workers of docker-compose.yml therefore see all GPUs and each claims one: an exclusive
``flock`` on ``gpu-ID.lock`` in a folder shared by the workers of one machine
(``$SMART_TUNER_GPU_LOCKS``, else ``<home>/gpu-locks``). The kernel drops the lock when the
process ends, however it ends (SIGKILL and OOM kills included), so a replacement worker finds
the GPU free again. Locks are per machine: never point the folder at a network filesystem.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from tuner import env
from tuner.errors import TunerError

LOCKS_ENV = env.GPU_LOCKS
CLAIM = "claim"  # the value of --gpus that asks for one claimed GPU


def lock_folder(home_root: Path) -> Path:
    """Return the folder of the GPU locks: ``$SMART_TUNER_GPU_LOCKS``, else ``<home>/gpu-locks``."""
    return Path(os.environ.get(LOCKS_ENV) or home_root / "gpu-locks")


class GpuClaim:
    """One claimed GPU; the lock lasts until ``release()`` or the end of the process."""

    def __init__(self, gpu: str, handle: IO[str]) -> None:
        self.gpu = gpu
        self._handle = handle

    def release(self) -> None:
        """Give the GPU back (closing the file drops the lock)."""
        if not self._handle.closed:
            self._handle.close()


def claim_gpu(folder: Path, candidates: list[str], owner: str) -> GpuClaim:
    """Return a claim on the first GPU of ``candidates`` no other live process holds.

    ``owner`` (``host:pid``) is written into the lock file for people looking at it; the lock,
    not the text, decides. TunerError when every candidate is taken.
    """
    if not candidates:
        raise TunerError("--gpus claim: no CUDA device is visible")
    folder.mkdir(parents=True, exist_ok=True)
    for gpu in candidates:
        handle = (folder / f"gpu-{gpu}.lock").open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{owner}\n")
        handle.flush()
        return GpuClaim(gpu, handle)
    raise TunerError(f"--gpus claim: all {len(candidates)} GPU(s) of this machine are claimed by other workers "
                     f"(locks in {folder}); run at most one worker per GPU")
