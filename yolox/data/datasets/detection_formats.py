"""Datasets of every supported annotation format (COCO json, YOLO txt, crater CSV), checked before use.

Loading a split as a COCO-format dict lives in .split_loading (re-exported here); the check in .dataset_check.
"""
import os
from typing import Optional, Sequence, Union

from ..errors import DataError
from .coco import COCODataset, read_annotation_json
from .crater_csv import csv_class_names
from .dataset_check import checked_split
from .split_loading import (  # noqa: F401 (re-exported: this module is the formats' one entry point)
    FORMATS, annotation_file, available_splits, coco_names, detect_format, load_split_as_coco, load_split_for_check,
    resolve_format,
)
from .yolo_txt import yolo_num_classes


def build_detection_dataset(
    data_dir: str,
    split: str,
    img_size: Sequence[int],
    preproc=None,
    cache: bool = False,
    cache_type: str = "ram",
    data_format: str = "auto",
    json_file: Optional[str] = None,
    name: Optional[str] = None,
    strict: bool = False,
) -> COCODataset:
    """A COCODataset for `split` ('train', 'val', 'test') of a dataset in any supported format.

    The split passes the dataset check first (yolox.data.datasets.dataset_check): bad images are
    skipped, or with `strict` raise a one-line DataError; the result is the dataset's `data_check`.
    For COCO folders `json_file`/`name` default to instances_<split>2017.json and <split>2017.
    """
    data, images_dir, source, check = checked_split(data_dir, split, data_format, json_file, name, strict)
    json_file, _ = coco_names(split, json_file, name)
    dataset = COCODataset(data_dir, json_file=json_file, name=os.path.relpath(images_dir, data_dir),
                          img_size=img_size, preproc=preproc, cache=cache, cache_type=cache_type, coco=data,
                          source=source)
    dataset.data_check = check
    return dataset


def count_classes(data_dir: str, data_format: str = "auto", json_file: Optional[str] = None) -> int:
    """Number of classes declared by the dataset at `data_dir` (COCO: categories of `json_file`)."""
    data_format = resolve_format(data_dir, data_format)
    if data_format == "yolo":
        return yolo_num_classes(data_dir)
    if data_format == "csv":
        return len(csv_class_names(data_dir))
    json_file = json_file or coco_names("train", None, None)[0]
    return len(read_annotation_json(os.path.join(data_dir, "annotations", json_file)).get("categories", []))


def check_num_classes(data: Union[str, COCODataset], num_classes: int, data_format: str = "auto",
                      json_file: Optional[str] = None) -> int:
    """Raise a one-line ValueError unless the data's class count equals the exp's num_classes."""
    if isinstance(data, (str, os.PathLike)):
        found, where = count_classes(str(data), data_format, json_file), str(data)
    else:
        found, where = len(data.class_ids), data.source
    if found != num_classes:
        plural = "class" if found == 1 else "classes"
        raise DataError(
            f"data at {where} has {found} {plural} but the exp says num_classes={num_classes}: "
            f"set num_classes = {found} in your exp"
        )
    return found
