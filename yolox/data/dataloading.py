"""Training DataLoader with the mosaic switch, worker seeding and the dataset root lookup."""
import os
import random

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader


def get_yolox_datadir() -> str:
    """Dataset root: $YOLOX_DATADIR if set, else the `datasets` folder beside the yolox package."""
    env_dir = os.getenv("YOLOX_DATADIR")
    if env_dir:
        return env_dir
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(os.path.dirname(package_dir), "datasets")


class DataLoader(TorchDataLoader):
    """torch DataLoader whose batch sampler's mosaic flag can be turned off for the last epochs."""

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
