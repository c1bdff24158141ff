"""Infinite shuffled index stream and the batch sampler that tags items with mosaic flag and seed."""
import itertools
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data.sampler import BatchSampler, Sampler


def derive_sample_seed(seed: int, position: int) -> int:
    """32-bit seed for the item at `position` of the global stream of a run seeded with `seed`."""
    return int(np.random.SeedSequence([int(seed) % 2**63, position]).generate_state(1)[0])


class InfiniteSampler(Sampler):
    """Endless stream of indices: a new seeded permutation per pass, sharded across ranks.

    `start` is the number of this rank's samples already consumed; the stream resumes there.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0):
        if size <= 0:
            raise ValueError(f"InfiniteSampler needs a non-empty dataset, got size {size}")
        self._size = size
        self._shuffle = shuffle
        self._seed = int(seed)
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[int]:
        first = self.start * self.world_size + self.rank
        yield from itertools.islice(self._infinite_indices(), first, None, self.world_size)

    def _infinite_indices(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self._seed)
        while True:
            if self._shuffle:
                yield from torch.randperm(self._size, generator=generator).tolist()
            else:
                yield from range(self._size)

    def __len__(self) -> int:
        return self._size // self.world_size


class YoloBatchSampler(BatchSampler):
    """Batches of (mosaic_flag, index, sample_seed).

    sample_seed comes from (seed, the item's position in the global stream), so augmentation
    is the same whatever the worker count or resume point; it is None when seed is None.
    """

    def __init__(self, *args, mosaic: bool = True, seed: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mosaic = mosaic
        self.seed = seed

    def __iter__(self) -> Iterator[List[Tuple[bool, int, Optional[int]]]]:
        rank = getattr(self.sampler, "rank", 0)
        world_size = getattr(self.sampler, "world_size", 1)
        position = getattr(self.sampler, "start", 0)
        batch = []
        for index in self.sampler:
            global_position = position * world_size + rank
            sample_seed = None if self.seed is None else derive_sample_seed(self.seed, global_position)
            batch.append((self.mosaic, index, sample_seed))
            position += 1
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch
