"""The training data of one process: the loader at a position in its sample stream, the prefetcher one batch
ahead of it, and the batch size (halved when a step runs out of memory)."""
import gc
from typing import List, Optional, Tuple

import torch
from loguru import logger

from yolox.core.exp_calls import build_train_loader, loader_restarts_at
from yolox.core.training_errors import TrainingOutOfMemory
from yolox.data.data_prefetcher import DataPrefetcher
from yolox.utils.device import DevicePolicy

__all__ = ["DataStream"]


class DataStream:
    """Builds (and rebuilds) the exp's training loader at `samples_seen`, the images this process has consumed,
    so that closing mosaic, a smaller batch or a resume continue the same stream of samples."""

    def __init__(self, exp, policy: DevicePolicy, batch_size: int, world_size: int, cache: Optional[str]) -> None:
        self.exp = exp
        self.policy = policy
        self.batch_size = int(batch_size)        # over all processes
        self.world_size = world_size
        self.cache = cache
        self.samples_seen = 0                    # images of this process's stream consumed so far
        self.mosaic_closed = False
        self.loader = None
        self.prefetcher: Optional[DataPrefetcher] = None
        self.iters_per_epoch = 0

    @classmethod
    def for_run(cls, exp, policy: DevicePolicy, options, world_size: int, resume, start_epoch: int,
                mosaic_closed: bool) -> "DataStream":
        """The stream of a run (RunOptions `options`), started where `resume` (a ResumePoint, or None) left it:
        at its exact position, else (an upstream checkpoint, or -e given) where an unbroken run of start_epoch
        epochs would be."""
        exact = resume is not None and resume.exact
        batch = int(resume.state.get("batch_size", options.batch_size)) if exact else options.batch_size
        stream = cls(exp, policy, batch, world_size, options.cache)
        stream.start(resume.samples_seen if exact else 0, mosaic_closed)
        if resume is not None and not exact and start_epoch:
            stream.start(start_epoch * stream.iters_per_epoch * stream.per_rank_batch, mosaic_closed)
        return stream

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.world_size

    def start(self, samples_seen: int, mosaic_closed: bool) -> None:
        """(Re)build the loader and its prefetcher at `samples_seen`."""
        self.samples_seen = int(samples_seen)
        self.mosaic_closed = bool(mosaic_closed)
        if self.samples_seen and not loader_restarts_at(self.exp):
            logger.warning("this exp's get_data_loader takes no `start`: the data stream restarts from its "
                           "beginning, so a resumed run is not sample-exact")
        self.loader = build_train_loader(self.exp, self.batch_size, self.world_size > 1, self.mosaic_closed,
                                         self.cache, self.samples_seen, self.policy)
        self.iters_per_epoch = len(self.loader)
        self.prefetcher = DataPrefetcher(self.loader, self.policy)

    def close_mosaic(self) -> None:
        """A fresh loader without mosaic at the current position: no batch prefetched with mosaic leaks past it."""
        if not self.mosaic_closed:
            self.start(self.samples_seen, mosaic_closed=True)

    def take(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """This step's batch (queued by the previous preload)."""
        return self.prefetcher.take()

    def consumed(self, images: int) -> None:
        """Count a step's images once the step ran (a step out of memory is retried from its first image)."""
        self.samples_seen += int(images)

    def preload(self) -> None:
        """Queue the next batch's read, copy and augmentation (call after the step is queued on the device)."""
        self.prefetcher.preload()

    def shrink(self, epoch_start_samples: int, message: str, input_size: Tuple[int, ...]) -> int:
        """Halve the per-process batch and restart at the first image of the failed step; returns the iteration
        of the current epoch to continue at. At one image per process there is nothing left to halve."""
        if self.per_rank_batch <= 1:
            raise TrainingOutOfMemory(
                f"Out of memory at batch size {self.batch_size} (input size {tuple(input_size)}): {message}. "
                "Cannot shrink the batch below one image per process: lower input_size/test_size in the exp "
                "or use a smaller model.")
        self.batch_size = max(self.per_rank_batch // 2, 1) * self.world_size
        epoch_samples = self.samples_seen - epoch_start_samples
        self.start(self.samples_seen, self.mosaic_closed)
        return epoch_samples // self.per_rank_batch

    def close(self) -> None:
        """Stop the loader's workers now (at the end of training), not whenever the process exits: they belong to
        the prefetcher's iterator, which goes."""
        self.prefetcher = None
        gc.collect()

    def skipped_images(self) -> List[str]:
        """Training images that became unreadable after the dataset check (skipped, replaced by others)."""
        images = getattr(self.loader.dataset, "_dataset", None) if self.loader is not None else None
        skipped = getattr(images, "skipped", None)
        if skipped is None:
            return []
        return [images.image_path(i) if hasattr(images, "image_path") else str(i) for i in skipped.indices()]
