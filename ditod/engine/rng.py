"""Random-number state for exact resume: each rank's torch, CUDA, numpy and Python RNG states
are saved with a checkpoint and restored when training resumes from it, so the resumed run
draws the proposals, ROI samples and augmentations the uninterrupted one would have."""

import random

import numpy as np
import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["GatherRNGStates", "restore_rank_rng", "rng_state", "set_rng_state"]


def rng_state() -> dict:
    """This process's torch (CPU, and its current CUDA device), numpy and Python RNG states, in
    types that ``torch.load(weights_only=True)`` reads back. Proposal and ROI sampling and the
    random augmentations draw from them."""
    _, keys, position, has_gauss, cached_gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
        "numpy": (torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss),
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state` (the CUDA state into the current device only)."""
    torch.set_rng_state(state["torch"])
    cuda = state["cuda"]
    if isinstance(cuda, list | tuple):  # checkpoints before 2026-11: one state per visible device
        index = torch.cuda.current_device() if torch.cuda.is_available() and cuda else None
        cuda = cuda[index] if index is not None and index < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
    keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state(
        ("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss)
    )
    random.setstate(state["python"])


def restore_rank_rng(states, rank: int) -> bool:
    """Restore this rank's state from a checkpoint's ``rng`` (a list with one state per rank;
    a single dict in older checkpoints: rank 0's). False when the checkpoint has none for this
    rank (resumed with more processes): that rank goes on from its seed."""
    states = [states] if isinstance(states, dict) else list(states or [])
    if rank >= len(states):
        return False
    set_rng_state(states[rank])
    return True


class GatherRNGStates(HookBase):
    """On every rank, at the iterations ``PeriodicCheckpointer`` (rank 0 only) saves, gather each
    rank's :func:`rng_state` into ``trainer.rank_rng_states`` for the checkpoint."""

    def __init__(self, period: int):
        self.period = period

    def after_step(self):
        iteration = self.trainer.iter
        if (iteration + 1) % self.period == 0 or iteration >= self.trainer.max_iter - 1:
            self.trainer.rank_rng_states = comm.all_gather(rng_state())
