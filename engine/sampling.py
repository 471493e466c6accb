"""Data order and augmentation randomness that a restart can reproduce exactly.

Resuming at step ``s`` must feed the same batches, augmented the same way, as an
uninterrupted run would (``tests/engine/test_resume.py``). Two things make that so,
whatever the number of DataLoader workers:

* ``ResumableBatchSampler`` yields batch ``s`` as a pure function of ``(seed, stream, s)``:
  the sample order is an endless concatenation of permutations, epoch ``e``'s seeded by
  ``(seed, stream, e)``, so it can start at any step without replaying the ones before.
* ``SeededItems`` loads item ``(s, i)`` inside RNGs (python, numpy, torch) seeded by
  ``(seed, stream, s, i)`` and restores the caller's RNG states afterwards, so the
  augmentations in ``engine.data`` (which draw from those global RNGs) depend neither on
  which worker process loads the item nor on what ran before, and loading in the training
  process (``num_workers=0``) leaves the training RNG untouched.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

#: Streams keep the labelled and unlabelled loaders' randomness independent.
LABELED_STREAM = 0
UNLABELED_STREAM = 1
_PERMUTATION, _ITEM = 0, 1


def derive_seed(*keys: int) -> int:
    """A 63-bit seed mixed from non-negative integers (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0] >> 1)


@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Run the body with python, numpy and torch (CPU) RNGs seeded by ``seed``, then restore them."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would also reseed CUDA
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


class ResumableBatchSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(step, index)`` keys, starting at ``start_step``.

    Every sample appears once per epoch; a batch may straddle two epochs, so no sample is
    dropped. ``batch_size`` must not exceed ``size`` (the trainer checks it first, with a
    message that names the label budget).
    """

    def __init__(self, size: int, batch_size: int, seed: int, stream: int, start_step: int = 0):
        if not 0 < batch_size <= size:
            raise ValueError(f"batch size {batch_size} does not fit {size} samples")
        self.size, self.batch_size, self.seed, self.stream = size, batch_size, seed, stream
        self.start_step = start_step
        self._epoch = -1
        self._order: list[int] = []

    def _index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, self.stream, _PERMUTATION, epoch))
            self._epoch, self._order = epoch, torch.randperm(self.size, generator=generator).tolist()
        return self._order[offset]

    def batch(self, step: int) -> list[tuple[int, int]]:
        first = step * self.batch_size
        return [(step, self._index_at(first + k)) for k in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class SizedDataset(Protocol):
    """A map-style dataset that knows its length, which every batch sampler here needs
    (torch's ``Dataset`` declares ``__getitem__`` only)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


class SeededItems(Dataset):
    """``dataset[index]`` for a ``(step, index)`` key, augmented by RNGs seeded from the key."""

    def __init__(self, dataset: SizedDataset, seed: int, stream: int):
        self.dataset, self.seed, self.stream = dataset, seed, stream

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        step, index = key
        with seeded_rng(derive_seed(self.seed, self.stream, _ITEM, step, index)):
            return self.dataset[index]
