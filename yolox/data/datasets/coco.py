"""COCO-format detection dataset (upstream folder and json conventions).

Layout: `<data_dir>/annotations/<json_file>` and images under `<data_dir>/<name>/<file_name>`.
A COCO-format dict can be passed instead of a json file (`coco=`), which is how the crater
formats (YOLO txt folders, crater CSVs) are served.
"""
import contextlib
import io
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from loguru import logger
from pycocotools.coco import COCO

from ..dataloading import get_yolox_datadir
from ..errors import DataError, DataFileNotFoundError
from ..image_files import read_image_file
from .datasets_wrapper import CacheDataset

IMAGE_FIELDS_UNUSED = ("license", "coco_url", "date_captured", "flickr_url")


def read_annotation_json(path: str) -> dict:
    """Load a COCO annotation json; a missing or malformed file gives a one-line error naming it."""
    if not os.path.isfile(path):
        raise DataFileNotFoundError(f"annotation file {path} not found: check data_dir and the exp's train_ann/val_ann")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(
            f"annotation file {path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg}): "
            "fix or re-export the file"
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(f"annotation file {path} is not UTF-8 text ({err.reason}): re-export it as JSON") from None


def validate_coco_dict(data: dict, source: str, check_categories: bool = True) -> None:
    """Check the structure a detection json needs; raise one line naming the bad entry and the fix.

    With check_categories=False a box of an unknown category passes (the dataset check drops it).
    """
    if not isinstance(data, dict):
        raise DataError(f"{source}: top level must be a JSON object with images/annotations/categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{source}: missing '{key}' list: not a COCO detection annotation file")
    data.setdefault("annotations", [])
    image_ids = set()
    for pos, image in enumerate(data["images"]):
        missing = [k for k in ("id", "width", "height") if k not in image]
        if missing:
            raise DataError(f"{source}: images[{pos}] lacks {', '.join(missing)}: add them to the image entry")
        image_ids.add(image["id"])
    category_ids = {cat["id"] for cat in data["categories"]}
    for pos, ann in enumerate(data["annotations"]):
        if "id" not in ann:
            raise DataError(f"{source}: annotations[{pos}] has no 'id': give every annotation a unique id")
        ann["iscrowd"] = ann.get("iscrowd") or 0  # null counts as not crowd, as the dataset check reads it
        if check_categories and ann.get("category_id") not in category_ids:
            raise DataError(
                f"{source}: annotations[{pos}] (id {ann.get('id')}) has category_id {ann.get('category_id')!r}, "
                f"which is not among the categories {sorted(category_ids)}: add the category or fix the annotation"
            )
        if ann.get("image_id") not in image_ids:
            raise DataError(
                f"{source}: annotations[{pos}] (id {ann.get('id')}) refers to image_id {ann.get('image_id')!r}, "
                "which is not among the images: add the image entry or remove the annotation"
            )
        bbox = ann.get("bbox")
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            raise DataError(
                f"{source}: annotations[{pos}] (id {ann.get('id')}) has bbox {bbox!r}: expected [x, y, w, h]"
            )


def build_coco_api(data: dict) -> COCO:
    """A pycocotools COCO over an in-memory dict (its index-building chatter suppressed)."""
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def strip_unused_fields(data: dict) -> None:
    for key in ("info", "licenses"):
        data.pop(key, None)
    for image in data["images"]:
        for key in IMAGE_FIELDS_UNUSED:
            image.pop(key, None)
    for ann in data["annotations"]:
        ann.pop("segmentation", None)


class BoxCleanupStats:
    """Counts of annotation fixes, logged once per dataset."""

    def __init__(self):
        self.clipped = 0
        self.dropped_empty = 0
        self.background_images = 0

    def log(self, source: str) -> None:
        if self.clipped:
            logger.warning(f"{source}: {self.clipped} box(es) reach outside their image and were clipped to it")
        if self.dropped_empty:
            logger.warning(
                f"{source}: {self.dropped_empty} box(es) with zero or negative width/height (after clipping) "
                "were skipped"
            )
        if self.background_images:
            logger.info(
                f"{source}: {self.background_images} image(s) without boxes are kept as background images"
            )


def clean_boxes(anns: List[dict], width: int, height: int, stats: BoxCleanupStats) -> List[Tuple[float, ...]]:
    """Clip [x, y, w, h] boxes to the image and drop those without area inside it.

    The box alone decides: a json `area` field (the segmentation's area, 0 or absent in many bbox-only
    exports) is ignored, and a box reaching past the left or top edge keeps its right and bottom edge.
    """
    boxes = []
    for ann in anns:
        x, y, w, h = (float(v) for v in ann["bbox"])
        x1, y1 = max(0.0, x), max(0.0, y)
        x2, y2 = min(float(width), x + max(0.0, w)), min(float(height), y + max(0.0, h))
        if x < 0 or y < 0 or x + w > width or y + h > height:
            stats.clipped += 1
        if x2 > x1 and y2 > y1:
            boxes.append((x1, y1, x2, y2, ann["category_id"]))
        else:
            stats.dropped_empty += 1
    return boxes


class COCODataset(CacheDataset):
    """COCO detection dataset: items are (image, labels, (orig_h, orig_w), array([image_id])).

    Labels are (x1, y1, x2, y2, class_index) rows in the frame of the image resized to fit
    `img_size`; class_index is the category's position among the sorted category ids.
    """

    def __init__(
        self,
        data_dir: Optional[str] = None,
        json_file: str = "instances_train2017.json",
        name: str = "train2017",
        img_size: Sequence[int] = (416, 416),
        preproc=None,
        cache: bool = False,
        cache_type: str = "ram",
        coco: Optional[dict] = None,
        source: Optional[str] = None,
    ):
        if data_dir is None:
            data_dir = os.path.join(get_yolox_datadir(), "COCO")
        self.data_dir = data_dir
        self.json_file = json_file
        self.name = name
        self.img_size = tuple(img_size)
        self.preproc = preproc
        if coco is None:
            json_path = os.path.join(data_dir, "annotations", json_file)
            self.source = source or json_path
            data = read_annotation_json(json_path)
        else:
            self.source = source or f"in-memory annotations for {data_dir}"
            data = coco
        validate_coco_dict(data, self.source)
        strip_unused_fields(data)
        self.coco = build_coco_api(data)
        self.ids = self.coco.getImgIds()
        self.num_imgs = len(self.ids)
        self.class_ids = sorted(self.coco.getCatIds())
        self.cats = self.coco.loadCats(self.coco.getCatIds())
        self._classes = tuple(cat["name"] for cat in self.cats)
        self.annotations = self._load_all_annotations()
        self._check_images_exist()
        path_filename = [os.path.join(name, anno[3]) for anno in self.annotations]
        super().__init__(
            input_dimension=img_size,
            num_imgs=self.num_imgs,
            data_dir=data_dir,
            cache_dir_name="cache_" + (name.replace("/", "_").replace(os.sep, "_").strip("_") or "images"),
            path_filename=path_filename,
            cache=cache,
            cache_type=cache_type,
        )

    def __len__(self) -> int:
        return self.num_imgs

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def _load_all_annotations(self) -> list:
        stats = BoxCleanupStats()
        label_of = {cat_id: label for label, cat_id in enumerate(self.class_ids)}
        annotations = [self._load_image_annotation(image_id, label_of, stats) for image_id in self.ids]
        stats.log(self.source)
        return annotations

    def _load_image_annotation(self, image_id, label_of: Dict[int, int], stats: BoxCleanupStats):
        image = self.coco.loadImgs(image_id)[0]
        width, height = int(image["width"]), int(image["height"])
        ann_ids = self.coco.getAnnIds(imgIds=[image_id], iscrowd=False)
        boxes = clean_boxes(self.coco.loadAnns(ann_ids), width, height, stats)
        if not boxes:
            stats.background_images += 1
        res = np.zeros((len(boxes), 5))
        for row, (x1, y1, x2, y2, category_id) in enumerate(boxes):
            res[row] = (x1, y1, x2, y2, label_of[category_id])
        ratio = min(self.img_size[0] / height, self.img_size[1] / width)
        res[:, :4] *= ratio
        resized_info = (int(height * ratio), int(width * ratio))
        file_name = image.get("file_name") or f"{int(image_id):012}.jpg"
        return res, (height, width), resized_info, file_name

    def image_path(self, index: int) -> str:
        return os.path.join(self.data_dir, self.name, self.annotations[index][3])

    def _check_images_exist(self) -> None:
        missing = [i for i in range(self.num_imgs) if not os.path.isfile(self.image_path(i))]
        if missing:
            first = missing[0]
            raise DataFileNotFoundError(
                f"{self.source}: {len(missing)} of {self.num_imgs} image files are missing, first "
                f"{self.image_path(first)} (image id {self.ids[first]}): put the images in "
                f"{os.path.join(self.data_dir, self.name)} or remove their entries from the annotations"
            )

    def load_anno(self, index: int) -> np.ndarray:
        return self.annotations[index][0]

    def load_image(self, index: int) -> np.ndarray:
        path = self.image_path(index)
        read = read_image_file(path)
        if read.pixels is None:
            if not os.path.isfile(path):
                raise DataFileNotFoundError(f"image {path} (image id {self.ids[index]}) is missing: restore the file")
            raise DataError(
                f"image {path} (image id {self.ids[index]}) {read.problem}: replace it or remove its entry from "
                "the annotations"
            )
        return read.pixels

    def pull_item(self, index: int):
        index, img = self.read_img_or_next(index)
        res, img_info, _, _ = self.annotations[index]
        return img, res.copy(), img_info, np.array([self.ids[index]])
