"""Detection datasets: COCO json, crater formats (YOLO txt, crater CSV), mosaic wrapper."""
from .coco import COCODataset
from .coco_classes import COCO_CLASSES
from .datasets_wrapper import CacheDataset, ConcatDataset, Dataset, MixConcatDataset, cache_read_img
from .mosaicdetection import MosaicDetection
from .detection_formats import (
    available_splits, build_detection_dataset, check_num_classes, count_classes, detect_format, load_split_as_coco,
)
from .voc import VOC_CLASSES, AnnotationTransform, VOCDetection
