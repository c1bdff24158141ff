"""Data pipeline: datasets, augmentation, samplers and loaders."""
from .data_augment import TrainTransform, ValTransform
from .dataloading import DataLoader, get_yolox_datadir, worker_init_reset_seed
from .datasets import (
    COCO_CLASSES, CacheDataset, COCODataset, ConcatDataset, Dataset, MixConcatDataset, MosaicDetection,
    VOC_CLASSES, VOCDetection, build_detection_dataset, cache_read_img, check_num_classes, count_classes,
    detect_format,
)
from .samplers import InfiniteSampler, YoloBatchSampler


def __getattr__(name: str):
    # DataPrefetcher belongs to the trainer's module; import it only when asked for.
    if name == "DataPrefetcher":
        from .data_prefetcher import DataPrefetcher

        return DataPrefetcher
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
