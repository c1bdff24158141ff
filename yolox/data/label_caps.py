"""Per-image caps that follow the data: label rows in training, detections in evaluation.

A cap below the densest image silently drops boxes (training) or caps recall (evaluation), so each cap
defaults to the densest image of its split with headroom. An exp that sets a cap keeps its value.
"""
import math
from typing import Callable, Optional, Tuple

from yolox.data.datasets.dataset_check import check_split

HEADROOM = 1.25
# Floors: upstream's label rows per image, and COCO's standard maxDets (AP on sparse sets stays comparable).
MIN_MAX_LABELS = 120
MIN_EVAL_MAX_DETS = 100
MOSAIC_TILES = 4
CAP_NAMES = ("max_labels", "eval_max_dets")


def densest_image_boxes(data_dir: str, split: str, data_format: str = "auto") -> int:
    """Boxes kept in the densest usable image of a split, from the dataset check (cached beside the data)."""
    return check_split(data_dir, split, data_format).max_boxes_per_image


def images_per_sample(mosaic_prob: float, enable_mixup: bool, mixup_prob: float) -> int:
    """Most source images one training sample can hold: the mosaic's tiles plus a mixup image."""
    if mosaic_prob <= 0:
        return 1
    return MOSAIC_TILES + (1 if enable_mixup and mixup_prob > 0 else 0)


def with_headroom(count: int, headroom: float = HEADROOM) -> int:
    return math.ceil(count * headroom)


def _sample_text(sample_images: int) -> str:
    if sample_images == 1:
        return "one image per training sample (no mosaic)"
    return f"x {sample_images} images per training sample (mosaic tiles + mixup)"


def _floored(value: int, floor: int, reason: str, floor_name: str) -> Tuple[int, str]:
    """(value raised to floor, reason saying so when it was raised)."""
    if value >= floor:
        return value, reason
    return floor, f"{reason} = {value}, raised to {floor_name} {floor}"


def resolve_cap(name: str, value: Optional[int], densest: Callable[[str], int], sample_images: int) -> Tuple[int, str]:
    """(cap, reason) of "max_labels" or "eval_max_dets": the exp's value when set (not None), else from
    `densest(split)`, the most boxes in one image of "train" (label rows) or "val" (detections)."""
    if value is not None:
        return int(value), "set by the exp"
    if name == "max_labels":
        boxes = densest("train")
        return _floored(sample_images * with_headroom(boxes), MIN_MAX_LABELS,
                        f"densest train image {boxes} boxes x {HEADROOM} headroom, {_sample_text(sample_images)}",
                        "upstream's")
    if name == "eval_max_dets":
        boxes = densest("val")
        return _floored(with_headroom(boxes), MIN_EVAL_MAX_DETS,
                        f"densest val image {boxes} boxes x {HEADROOM} headroom", "COCO's maxDets")
    raise ValueError(f"unknown cap {name!r}: expected max_labels or eval_max_dets")
