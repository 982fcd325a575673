"""Batch samplers whose every random choice is a function of (seed, epoch, position).

The training sampler yields, per batch, a list of `SampleKey(index, seed, size, epoch)`:
the dataset index, a seed for that sample's augmentation, the input size of the batch
(random shapes) or None, and the epoch. Datasets draw their randomness from `key.seed` only, so
a run gives the same batches whatever the number of data-loading workers, and a run
resumed in the middle of an epoch sees exactly the batches the uninterrupted run saw.

Sharding: the global batch `b` of an epoch is `perm[b * G:(b + 1) * G]` (G the global
batch); process `r` takes its contiguous slice. The union over processes is the same
for any world size, so N processes of batch G/N see what one process of batch G sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from detect_tricks.core.errors import ConfigError


class SampleKey(NamedTuple):
    """What a dataset needs to produce one sample deterministically."""

    index: int
    seed: int
    size: int | None = None  # the square input size of this batch, None for the default
    epoch: int = 0  # the training epoch (mixup turns off for the last ones)


def derive_seed(*numbers: int) -> int:
    """A 32-bit seed that depends on all `numbers` (numpy's SeedSequence hashing)."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(1)[0])


class TrainBatchSampler:
    """Shuffled, sharded, resumable training batches of `SampleKey`, dropping the rest.

    Args:
        num_samples: dataset length.
        global_batch: images per step over all processes.
        rank, world_size: this process and the number of processes.
        seed: the run's seed.
        size_schedule: the input size at each global iteration (random shapes), or None.
    """

    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        size_schedule: Callable[[int], int] | None = None,
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(
                f"train.batch_size={global_batch} is the global batch and must divide "
                f"evenly over {world_size} processes"
            )
        self.batches_per_epoch = num_samples // global_batch
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"the training set has {num_samples} samples, fewer than one batch of "
                f"train.batch_size={global_batch}"
            )
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.per_process = global_batch // world_size
        self.rank = rank
        self.seed = seed
        self.size_schedule = size_schedule
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Yield the batches of `epoch` from batch `start_batch` on (to resume)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[SampleKey]]:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        for batch in range(self.start_batch, self.batches_per_epoch):
            iteration = self.epoch * self.batches_per_epoch + batch
            size = self.size_schedule(iteration) if self.size_schedule else None
            first = batch * self.global_batch + self.rank * self.per_process
            yield [
                SampleKey(order[p], derive_seed(self.seed, self.epoch, p), size, self.epoch)
                for p in range(first, first + self.per_process)
            ]


class EvalBatchSampler:
    """Every sample once, in order, process `r` taking indices `r, r + N, ...`.

    `subset` visits only those sample indices (in the order given) instead of all.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        subset: Sequence[int] | None = None,
    ) -> None:
        visited = list(range(num_samples)) if subset is None else list(subset)
        self.indices = visited[rank::world_size]
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for start in range(0, len(self.indices), self.batch_size):
            yield [SampleKey(i, 0) for i in self.indices[start : start + self.batch_size]]


def random_shape_schedule(seed: int, sizes: list[int], interval: int) -> Callable[[int], int]:
    """Random shapes (GluonCV YOLOv3): a size from `sizes` per `interval` iterations, drawn
    from (seed, iteration // interval) only, hence the same on every process."""

    def size_at(iteration: int) -> int:
        return sizes[derive_seed(seed, 7919, iteration // interval) % len(sizes)]

    return size_at


def fixed_subset(total: int, wanted: int | float, seed: int) -> list[int]:
    """A fixed random subset of `range(total)` in increasing order: `wanted` indices (a
    count >= 1, a fraction in (0, 1) rounded to the nearest count, or 0 for all), drawn
    without replacement from `seed` alone."""
    count = total if wanted == 0 else min(total, round(wanted * total) if wanted < 1 else wanted)
    if count >= total:
        return list(range(total))
    chosen = np.random.default_rng(derive_seed(seed, 4099, total)).permutation(total)[:count]
    return sorted(int(i) for i in chosen)


def spread_indices(total: int, count: int, multiple_of: int = 1) -> list[int]:
    """`count` indices spread evenly over `range(total)` (all of them when `count` is
    larger), cut to a multiple of `multiple_of` so every process gets as many."""
    count = min(count, total)
    count -= count % multiple_of
    return [i * total // count for i in range(count)] if count else []
