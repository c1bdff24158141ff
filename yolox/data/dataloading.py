"""Training DataLoader with the mosaic switch, worker seeding and the dataset root lookup."""
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader

from .errors import DataError


def get_yolox_datadir() -> str:
    """Dataset root: $YOLOX_DATADIR if set, else the `datasets` folder beside the yolox package."""
    env_dir = os.getenv("YOLOX_DATADIR")
    if env_dir:
        return env_dir
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(package_dir), "datasets")


def one_line_data_error(err: DataError) -> DataError:
    """The original one-line message of a DataError, without the worker traceback torch wraps it in."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
    message = last[len(prefix):] if last.startswith(prefix) else last
    if len(lines) > 1:
        message += " (raised in a DataLoader worker)"
    return type(err)(message)


class CleanErrorIterator:
    """Loader iterator that re-raises dataset input errors as their one-line message."""

    def __init__(self, iterator):
        self._iterator = iterator

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return next(self._iterator)
        except DataError as err:
            raise one_line_data_error(err) from None

    def __len__(self) -> int:
        return len(self._iterator)

    def __getattr__(self, name: str):
        return getattr(self._iterator, name)


class DataLoader(TorchDataLoader):
    """torch DataLoader whose batch sampler's mosaic flag can be turned off for the last epochs.

    Bad dataset input raised in a worker surfaces as its one-line DataError, not a worker traceback.
    `batch_transform` (e.g. a BatchAugment) is what the prefetcher applies to each batch after moving it.
    """

    def __init__(self, *args, batch_transform=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_transform = batch_transform

    def __iter__(self):
        return CleanErrorIterator(super().__iter__())

    def close_mosaic(self) -> None:
        # batches already handed to workers keep the flag they were sampled with
        self.batch_sampler.mosaic = False


def worker_init_reset_seed(worker_id: int) -> None:
    """Seed `random`, NumPy and torch in a worker from torch's per-worker seed.

    torch derives that seed from the main process's generator, so a seeded run seeds its workers
    reproducibly (upstream used uuid4 here). Items with a sample_seed reseed themselves anyway.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def eval_loader_workers(num_images: int, batch_size: int, workers: int) -> int:
    """Loader workers for an evaluation split: no more than its batches, none when one batch holds it.

    `workers` is what the device policy allows; an idle worker still costs a process start and a dataset copy.
    """
    batches = -(-max(num_images, 0) // max(batch_size, 1))
    return 0 if batches <= 1 else min(max(workers, 0), batches)
