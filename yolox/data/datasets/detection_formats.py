"""One entry point for every supported annotation format: COCO json, YOLO txt, crater CSV."""
import os
from typing import List, Optional, Sequence, Tuple, Union

from ..errors import DataError, DataFileNotFoundError
from .coco import COCODataset, read_annotation_json
from .crater_csv import csv_class_names, csv_splits, load_csv_split, split_csv
from .yolo_txt import find_yaml, load_yolo_split, yolo_num_classes, yolo_splits

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
    from .dataset_check import cache_file_for

    data_format = resolve_format(data_dir, data_format)
    described_by = annotation_file(data_dir, split, data_format, json_file)
    if data_format == "coco":
        json_file, name = coco_names(split, json_file, name)
        data, images_dir, source = read_annotation_json(described_by), os.path.join(data_dir, name), described_by
    else:
        data, images_dir = load_split_as_coco(data_dir, split, data_format)
        source = f"{data_format} dataset {data_dir} ({split})"
    return data, images_dir, source, cache_file_for(described_by, split)


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
    from .dataset_check import checked_split

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
