"""Loading one split of a dataset folder in any supported annotation format (COCO json, YOLO txt,
crater CSV) as a COCO-format dict, and naming the file that describes it."""
import os
from typing import List, Optional, Tuple

from ..errors import DataError, DataFileNotFoundError
from .check_cache import cache_file_for
from .coco import read_annotation_json
from .crater_csv import csv_splits, load_csv_split, split_csv
from .yolo_txt import find_yaml, load_yolo_split, yolo_splits

__all__ = ["FORMATS", "annotation_file", "available_splits", "coco_names", "detect_format", "load_split_as_coco",
           "load_split_for_check", "resolve_format"]

FORMATS = ("coco", "yolo", "csv")


def detect_format(data_dir: str) -> str:
    """'yolo' (data.yaml), 'coco' (annotations/*.json) or 'csv' (<split>.csv) for a dataset folder."""
    if not os.path.isdir(data_dir):
        raise DataFileNotFoundError(f"dataset folder {data_dir} not found: set data_dir in your exp (or YOLOX_DATADIR)")
    if find_yaml(data_dir):
        return "yolo"
    annotations = os.path.join(data_dir, "annotations")
    if os.path.isdir(annotations) and any(f.endswith(".json") for f in os.listdir(annotations)):
        return "coco"
    if csv_splits(data_dir):
        return "csv"
    raise DataError(
        f"cannot tell the annotation format of {data_dir}: expected annotations/*.json (COCO), "
        "data.yaml (YOLO txt) or train.csv/val.csv (crater CSV)"
    )


def resolve_format(data_dir: str, data_format: str = "auto") -> str:
    if data_format == "auto":
        return detect_format(data_dir)
    if data_format not in FORMATS:
        raise DataError(f"data_format {data_format!r} is not one of auto, {', '.join(FORMATS)}")
    return data_format


def coco_names(split: str, json_file: Optional[str], name: Optional[str]) -> Tuple[str, str]:
    return json_file or f"instances_{split}2017.json", name or f"{split}2017"


def load_split_as_coco(data_dir: str, split: str, data_format: str = "auto") -> Tuple[dict, str]:
    """(COCO-format dict, image folder) of a YOLO txt or crater CSV split."""
    data_format = resolve_format(data_dir, data_format)
    if data_format == "yolo":
        return load_yolo_split(data_dir, split)
    if data_format == "csv":
        return load_csv_split(data_dir, split)
    json_file, name = coco_names(split, None, None)
    return read_annotation_json(os.path.join(data_dir, "annotations", json_file)), os.path.join(data_dir, name)


def available_splits(data_dir: str, data_format: str = "auto") -> List[str]:
    data_format = resolve_format(data_dir, data_format)
    if data_format == "yolo":
        return yolo_splits(data_dir)
    if data_format == "csv":
        return csv_splits(data_dir)
    annotations = os.path.join(data_dir, "annotations")
    return [split for split in ("train", "val", "test")
            if os.path.isfile(os.path.join(annotations, coco_names(split, None, None)[0]))]


def annotation_file(data_dir: str, split: str, data_format: str, json_file: Optional[str] = None) -> str:
    """The file that describes `split`: the COCO json, the data.yaml or the split's CSV."""
    if data_format == "yolo":
        return find_yaml(data_dir)
    if data_format == "csv":
        return split_csv(data_dir, split) or os.path.join(data_dir, f"{split}.csv")
    return os.path.join(data_dir, "annotations", coco_names(split, json_file, None)[0])


def load_split_for_check(data_dir: str, split: str, data_format: str = "auto", json_file: Optional[str] = None,
                         name: Optional[str] = None) -> Tuple[dict, str, str, str]:
    """(COCO-format dict, image folder, source, check cache file) of one split in any format."""
    data_format = resolve_format(data_dir, data_format)
    described_by = annotation_file(data_dir, split, data_format, json_file)
    if data_format == "coco":
        json_file, name = coco_names(split, json_file, name)
        data, images_dir, source = read_annotation_json(described_by), os.path.join(data_dir, name), described_by
    else:
        data, images_dir = load_split_as_coco(data_dir, split, data_format)
        source = f"{data_format} dataset {data_dir} ({split})"
    return data, images_dir, source, cache_file_for(described_by, split)
