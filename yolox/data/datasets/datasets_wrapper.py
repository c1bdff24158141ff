"""Dataset base classes: input-dim bookkeeping, the mosaic/seed index protocol, image caching."""
import bisect
import os
import random
import shutil
import time
from functools import wraps
from multiprocessing.pool import ThreadPool
from numbers import Integral
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import psutil
from loguru import logger
from torch.utils.data import ConcatDataset as TorchConcatDataset
from torch.utils.data import Dataset as TorchDataset

from ..errors import DataError
from .skipped_images import SkippedImages


def reseed_item(sample_seed: int) -> None:
    """Seed Python `random` and NumPy for one item, so its augmentation depends only on the seed."""
    random.seed(sample_seed)
    np.random.seed(sample_seed % 2**32)


def split_index(index) -> Tuple[Optional[bool], int, Optional[int]]:
    """int, (mosaic, index) or (mosaic, index, sample_seed) -> (mosaic or None, index, seed or None)."""
    if isinstance(index, Integral):
        return None, int(index), None
    if isinstance(index, (tuple, list)) and len(index) in (2, 3):
        sample_seed = index[2] if len(index) == 3 else None
        return bool(index[0]), int(index[1]), sample_seed
    raise TypeError(f"dataset index must be an int, (mosaic, index) or (mosaic, index, sample_seed); got {index!r}")


class Dataset(TorchDataset):
    """A dataset with a (h, w) input dimension and a mosaic switch that batch samplers can flip."""

    def __init__(self, input_dimension: Sequence[int], mosaic: bool = True):
        super().__init__()
        self.__input_dim = tuple(input_dimension[:2])
        self.enable_mosaic = mosaic

    @property
    def input_dim(self) -> Tuple[int, int]:
        """The (h, w) items are produced at: `_input_dim` when a wrapper set it, else the constructor's."""
        if hasattr(self, "_input_dim"):
            return self._input_dim
        return self.__input_dim

    @staticmethod
    def mosaic_getitem(getitem_fn: Callable) -> Callable:
        """Decorate `__getitem__` to accept int, (mosaic, index) and (mosaic, index, sample_seed)."""

        @wraps(getitem_fn)
        def wrapper(self, index):
            mosaic, real_index, sample_seed = split_index(index)
            if mosaic is not None:
                self.enable_mosaic = mosaic
            if sample_seed is not None:
                reseed_item(sample_seed)
            return getitem_fn(self, real_index)

        return wrapper


class ConcatDataset(TorchConcatDataset):
    """torch ConcatDataset with the first dataset's `input_dim` and a routed `pull_item`."""

    def __init__(self, datasets):
        super().__init__(datasets)
        if hasattr(self.datasets[0], "input_dim"):
            self.input_dim = self.datasets[0].input_dim

    def _route(self, idx: int) -> Tuple[int, int]:
        if idx < 0:
            if -idx > len(self):
                raise IndexError(f"index {idx} out of range for a dataset of {len(self)} items")
            idx = len(self) + idx
        dataset_idx = bisect.bisect_right(self.cumulative_sizes, idx)
        sample_idx = idx if dataset_idx == 0 else idx - self.cumulative_sizes[dataset_idx - 1]
        return dataset_idx, sample_idx

    def pull_item(self, idx: int):
        dataset_idx, sample_idx = self._route(idx)
        return self.datasets[dataset_idx].pull_item(sample_idx)


class MixConcatDataset(ConcatDataset):
    """ConcatDataset whose `__getitem__` also accepts the (mosaic, index[, seed]) tuples."""

    def __getitem__(self, index):
        mosaic, real_index, sample_seed = split_index(index)
        dataset_idx, sample_idx = self._route(real_index)
        if mosaic is None:
            return self.datasets[dataset_idx][sample_idx]
        inner = (mosaic, sample_idx) if sample_seed is None else (mosaic, sample_idx, sample_seed)
        return self.datasets[dataset_idx][inner]


def cache_read_img(use_cache: bool = True) -> Callable:
    """Decorate `read_img(index, use_cache=...)` to serve images from the RAM or disk cache."""

    def decorator(read_img_fn: Callable) -> Callable:
        @wraps(read_img_fn)
        def wrapper(self, index: int, use_cache: bool = use_cache):
            if use_cache and self.cache:
                if self.cache_type == "ram":
                    return self.imgs[index].copy()
                return np.load(self.disk_cache_file(index))
            return read_img_fn(self, index)

        return wrapper

    return decorator


class CacheDataset(Dataset):
    """Dataset that can keep its resized images in RAM or as .npy files on disk.

    Subclasses define `load_image(index)`, `pull_item(index)`, `img_size` and `preproc`, and call this
    constructor after their annotations are loaded; `read_img` serves the resized image, from the cache
    when enabled, and indexing returns the pulled item after `preproc`.
    """

    def __init__(
        self,
        input_dimension: Sequence[int],
        num_imgs: Optional[int] = None,
        data_dir: Optional[str] = None,
        cache_dir_name: Optional[str] = None,
        path_filename: Optional[List[str]] = None,
        cache: bool = False,
        cache_type: str = "ram",
    ):
        super().__init__(input_dimension)
        if cache_type not in ("ram", "disk"):
            raise ValueError(f"cache_type must be 'ram' or 'disk', got {cache_type!r}")
        self.cache = cache
        self.cache_type = cache_type
        self.imgs = None
        self.skipped = SkippedImages(num_imgs or 0)
        if cache and cache_type == "disk":
            self.cache_dir = os.path.join(data_dir, cache_dir_name)
            self.path_filename = path_filename
        if cache:
            self.cache_images(num_imgs)

    def disk_cache_file(self, index: int) -> str:
        stem = os.path.splitext(self.path_filename[index])[0]
        return os.path.join(self.cache_dir, stem + ".npy")

    def cache_images(self, num_imgs: int) -> None:
        """Fill the cache (RAM: only if the estimate fits in available memory, else warn and read from disk)."""
        if self.cache_type == "disk" and os.path.isdir(self.cache_dir):
            logger.info(f"Found disk cache at {self.cache_dir}")
            return
        needed = self.estimate_cache_bytes(num_imgs)
        gb = 1024**3
        if self.cache_type == "ram":
            available = psutil.virtual_memory().available
            if needed > available:
                self.cache = False
                logger.warning(
                    f"RAM cache needs {needed / gb:.1f}GB but {available / gb:.1f}GB is available: "
                    "reading images from disk instead (use --cache disk, or free memory)"
                )
                return
            logger.info(f"Caching {num_imgs} images in RAM: {needed / gb:.1f}GB of {available / gb:.1f}GB available")
            self.imgs = [None] * num_imgs
        else:
            parent = os.path.dirname(os.path.abspath(self.cache_dir))
            if not os.access(parent, os.W_OK):
                raise PermissionError(
                    f"cannot write the disk cache in {parent} (not writable): use --cache ram, or copy the dataset "
                    "to a writable folder"
                )
            free = shutil.disk_usage(parent).free
            if needed > free:
                raise OSError(
                    f"disk cache at {self.cache_dir} needs {needed / gb:.1f}GB but {free / gb:.1f}GB is free: "
                    "free disk space or use --cache ram"
                )
            logger.info(f"Caching {num_imgs} images to {self.cache_dir} ({needed / gb:.1f}GB)")
        self._fill_cache(num_imgs)

    def estimate_cache_bytes(self, num_imgs: int) -> int:
        """Bytes for all resized images, extrapolated from up to 32 random ones."""
        sample = random.Random(0).sample(range(num_imgs), min(num_imgs, 32))
        sampled_bytes = sum(self.read_img(index, use_cache=False).nbytes for index in sample)
        return int(sampled_bytes * num_imgs / max(len(sample), 1))

    def _fill_cache(self, num_imgs: int) -> None:
        partial_dir = None
        if self.cache_type == "disk":
            # Written under a temporary name and renamed when complete, so an interrupted run never
            # leaves a directory that a later run would take for a finished cache.
            partial_dir = self.cache_dir + ".partial"
            shutil.rmtree(partial_dir, ignore_errors=True)

        def store(index: int) -> None:
            img = self.read_img(index, use_cache=False)
            if partial_dir is None:
                self.imgs[index] = img
                return
            path = os.path.join(partial_dir, os.path.relpath(self.disk_cache_file(index), self.cache_dir))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            np.save(path, img)

        threads = min(8, max(1, (os.cpu_count() or 1) - 1))
        started = time.monotonic()
        report_every = max(1, num_imgs // 10)
        with ThreadPool(threads) as pool:
            for done, _ in enumerate(pool.imap_unordered(store, range(num_imgs)), start=1):
                if done % report_every == 0 or done == num_imgs:
                    elapsed = time.monotonic() - started
                    eta = elapsed / done * (num_imgs - done)
                    logger.info(f"cached {done}/{num_imgs} images, {elapsed:.0f}s elapsed, ETA {eta:.0f}s")
        if partial_dir is not None:
            os.replace(partial_dir, self.cache_dir)

    def load_image(self, index: int) -> np.ndarray:
        raise NotImplementedError("a CacheDataset subclass must define load_image")

    def load_resized_img(self, index: int) -> np.ndarray:
        """The image scaled to fit `self.img_size` (no padding): what the cache stores."""
        img = self.load_image(index)
        ratio = min(self.img_size[0] / img.shape[0], self.img_size[1] / img.shape[1])
        size = (int(img.shape[1] * ratio), int(img.shape[0] * ratio))
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR).astype(np.uint8)

    @cache_read_img(use_cache=True)
    def read_img(self, index: int, use_cache: bool = True) -> np.ndarray:
        return self.load_resized_img(index)

    def read_img_or_next(self, index: int) -> Tuple[int, np.ndarray]:
        """(index read, resized image): an image that can no longer be read is skipped with a warning
        naming it, and the next readable one in index order is served instead (the same in every worker)."""
        for step in range(len(self)):
            candidate = (index + step) % len(self)
            if self.skipped.is_marked(candidate):
                continue
            try:
                return candidate, self.read_img(candidate)
            except DataError as error:
                if self.skipped.mark(candidate):
                    logger.warning(f"skipped for the rest of this run: {error}")
        raise DataError(f"none of the {len(self)} images can be read any more: restore the dataset's files")

    def pull_item(self, index: int):
        raise NotImplementedError("a CacheDataset subclass must define pull_item")

    @Dataset.mosaic_getitem
    def __getitem__(self, index: int):
        """(image, target, img_info, img_id) after `self.preproc` (when set) at the current input size."""
        img, target, img_info, img_id = self.pull_item(index)
        if self.preproc is not None:
            img, target = self.preproc(img, target, self.input_dim)
        return img, target, img_info, img_id
