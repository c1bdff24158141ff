"""Dataset check before training, for every format we read (COCO json, YOLO txt, crater CSV).

Every image is read once (exists, decodes, decoded size equals the annotated size) and every box is
checked (inside the image after clipping, positive size, known category). Image verdicts are cached
beside the annotations, keyed by each image's size and mtime, so a second run only stats the files;
when that folder is read-only the cache goes to the user cache dir ($XDG_CACHE_HOME or ~/.cache,
under yolox/dataset_check/). Boxes are re-checked on every run (cheap, no image reads).

Public API
----------
check_split(data_dir, split, data_format="auto", json_file=None, name=None) -> DatasetCheck
    Load one split ("train", "val", "test") of a dataset folder in any supported format and check it.
check_coco_dict(data, images_dir, source, cache_file) -> DatasetCheck
    The same for a COCO-format dict already in memory (what every format is converted to).
DatasetCheck (a dataclass; all fields are plain numbers, strings and lists, as cached):
    split, source                  which data was checked
    images_total, images_ok        image entries, and those usable for training
    missing, corrupt, size_mismatch, without_boxes
                                   file names (relative to the image folder) of each kind; the first
                                   three are the bad images, skipped by default
    boxes_total, boxes_kept, boxes_clipped, boxes_dropped, unknown_category
                                   box counts over the usable images (non-crowd); clipped boxes are
                                   kept, dropped ones (no area after clipping, unknown category) not
    clipped_files, dropped_files   images that have clipped / dropped boxes
    max_boxes_per_image            boxes kept in the densest usable image (0 when none has a box)
    densest_image                  its file name ("" when none)
    bad_images                     missing + corrupt + size_mismatch, in that order (property)
    summary_table()                the logged table: counts and up to 20 named files per kind
    log()                          log the table (a warning when something is bad)
    raise_if_strict(strict)        with strict, a one-line DataError naming the bad images
    usable_coco(data)              the dict without bad images and boxes of unknown category
"""
import dataclasses
import hashlib
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from loguru import logger
from tabulate import tabulate

from ..errors import DataError
from .coco import BoxCleanupStats, clean_boxes, validate_coco_dict
from .image_folder import read_image

__all__ = ["DatasetCheck", "check_coco_dict", "check_split", "cache_file_for", "NAMED_FILES"]

CACHE_VERSION = 1
CACHE_SUFFIX = ".yolox_check"
NAMED_FILES = 20  # file names listed per kind in the summary; the rest are counted
PROGRESS_EVERY_S = 10.0


@dataclasses.dataclass
class DatasetCheck:
    """The outcome of checking one split; see the module docstring for the fields."""

    split: str
    source: str
    images_total: int = 0
    images_ok: int = 0
    missing: List[str] = dataclasses.field(default_factory=list)
    corrupt: List[str] = dataclasses.field(default_factory=list)
    size_mismatch: List[str] = dataclasses.field(default_factory=list)
    without_boxes: List[str] = dataclasses.field(default_factory=list)
    boxes_total: int = 0
    boxes_kept: int = 0
    boxes_clipped: int = 0
    boxes_dropped: int = 0
    unknown_category: int = 0
    clipped_files: List[str] = dataclasses.field(default_factory=list)
    dropped_files: List[str] = dataclasses.field(default_factory=list)
    max_boxes_per_image: int = 0
    densest_image: str = ""

    @property
    def bad_images(self) -> List[str]:
        return self.missing + self.corrupt + self.size_mismatch

    def summary_table(self) -> str:
        rows = [
            ("images ok", self.images_ok, ""),
            ("images missing", len(self.missing), name_some(self.missing)),
            ("images corrupt", len(self.corrupt), name_some(self.corrupt)),
            ("images of another size than annotated", len(self.size_mismatch), name_some(self.size_mismatch)),
            ("images without boxes (kept as background)", len(self.without_boxes), name_some(self.without_boxes)),
            ("boxes kept", self.boxes_kept, ""),
            ("boxes clipped to their image (kept)", self.boxes_clipped, name_some(self.clipped_files)),
            ("boxes dropped (no area, or unknown category)", self.boxes_dropped, name_some(self.dropped_files)),
            ("most boxes in one image", self.max_boxes_per_image, self.densest_image),
        ]
        return tabulate(rows, headers=["dataset check", "count", "files"], tablefmt="github")

    def log(self) -> None:
        title = f"dataset check of {self.source}, {self.images_total} images:\n"
        if self.bad_images:
            logger.warning(title + self.summary_table() + f"\n{len(self.bad_images)} bad image(s) are skipped")
        else:
            logger.info(title + self.summary_table())

    def raise_if_strict(self, strict: bool) -> None:
        if not (strict and (self.bad_images or self.unknown_category)):
            return
        kinds = [(kind, names) for kind, names in (("missing", self.missing), ("corrupt", self.corrupt),
                                                   ("of another size than annotated", self.size_mismatch))
                 if names]
        parts = [f"{len(names)} {kind} ({name_some(names)})" for kind, names in kinds]
        if self.unknown_category:
            parts.append(f"{self.unknown_category} box(es) of an unknown category ({name_some(self.dropped_files)})")
        raise DataError(
            f"dataset check of {self.source} ({self.split}) failed under strict_data: {'; '.join(parts)}: "
            "fix or remove them, or train without --strict-data (strict_data = False) to skip them"
        )

    def usable_coco(self, data: dict) -> dict:
        """A copy of `data` without the bad images, their boxes and boxes of unknown category."""
        bad = set(self.bad_images)
        images = [image for image in data["images"] if image_file_name(image) not in bad]
        kept_ids = {image["id"] for image in images}
        categories = {cat["id"] for cat in data["categories"]}
        annotations = [ann for ann in data.get("annotations", [])
                       if ann.get("image_id") in kept_ids and ann.get("category_id") in categories]
        return dict(data, images=images, annotations=annotations)


def name_some(names: Sequence[str], limit: int = NAMED_FILES) -> str:
    """Up to `limit` names, then how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def image_file_name(image: dict) -> str:
    return image.get("file_name") or f"{int(image['id']):012}.jpg"


# ------------------------------------------------------------------ images
def file_stamp(path: str) -> Optional[List[int]]:
    """[size, mtime in ns] of a file, None when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns] if os.path.isfile(path) else None


def decoded_size(path: str) -> Optional[List[int]]:
    """[height, width] as the training loader will decode the file, None when it cannot be decoded."""
    img = read_image(path)
    return None if img is None else [int(img.shape[0]), int(img.shape[1])]


def image_verdict(path: str) -> dict:
    """{"stamp": [size, mtime_ns] or None, "size": [h, w] or None} of one image file."""
    stamp = file_stamp(path)
    return {"stamp": stamp, "size": decoded_size(path) if stamp is not None else None}


def check_images(file_names: Sequence[str], images_dir: str, cached: Dict[str, dict]) -> Dict[str, dict]:
    """The verdict of every file, reusing cached ones whose size and mtime are unchanged."""
    verdicts: Dict[str, dict] = {}
    to_read = []
    for file_name in file_names:
        previous = cached.get(file_name)
        stamp = file_stamp(os.path.join(images_dir, file_name))
        if stamp is not None and previous is not None and previous.get("stamp") == stamp:
            verdicts[file_name] = previous
        else:
            to_read.append(file_name)
    if not to_read:
        return verdicts
    logger.info(f"dataset check: reading {len(to_read)} of {len(file_names)} images in {images_dir}")
    started = last_report = time.monotonic()
    paths = [os.path.join(images_dir, name) for name in to_read]
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for done, (file_name, verdict) in enumerate(zip(to_read, pool.map(image_verdict, paths)), start=1):
            verdicts[file_name] = verdict
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_S and done < len(to_read):
                last_report = now
                logger.info(f"dataset check: {done}/{len(to_read)} images read, {now - started:.0f}s elapsed, "
                            f"ETA {(now - started) / done * (len(to_read) - done):.0f}s")
    return verdicts


# ------------------------------------------------------------------ cache
def cache_file_for(annotation_file: str, split: str) -> str:
    """Where the check of `split` described by `annotation_file` is cached (beside that file)."""
    return f"{annotation_file}.{split}{CACHE_SUFFIX}"


def user_cache_file(beside: str) -> str:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha1(os.path.abspath(beside).encode("utf-8")).hexdigest()[:16]
    return os.path.join(root, "yolox", "dataset_check", f"{digest}_{os.path.basename(beside)}")


def read_cache(cache_file: str, images_dir: str) -> Dict[str, dict]:
    """Cached image verdicts for `images_dir`, from beside the annotations or the user cache dir."""
    for path in (cache_file, user_cache_file(cache_file)):
        try:
            with open(path, "r", encoding="utf-8") as f:
                content = json.load(f)
        except (OSError, ValueError):
            continue
        if content.get("version") == CACHE_VERSION and content.get("images_dir") == os.path.abspath(images_dir):
            return content.get("images", {})
    return {}


def write_cache(cache_file: str, images_dir: str, verdicts: Dict[str, dict], check: DatasetCheck) -> None:
    """Write atomically beside the annotations, or in the user cache dir when that folder is read-only."""
    content = {"version": CACHE_VERSION, "images_dir": os.path.abspath(images_dir), "images": verdicts,
               "result": dataclasses.asdict(check)}
    for path in (cache_file, user_cache_file(cache_file)):
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            handle, partial = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".partial")
        except OSError:
            continue
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as f:
                json.dump(content, f)
            os.replace(partial, path)
            return
        except OSError:
            if os.path.exists(partial):
                os.remove(partial)
    logger.warning(f"dataset check: could not cache the result at {cache_file} nor {user_cache_file(cache_file)}; "
                   "the next run reads every image again")


# ------------------------------------------------------------------ boxes
def split_by_image(data: dict) -> Dict[int, List[dict]]:
    anns: Dict[int, List[dict]] = {}
    for ann in data.get("annotations", []):
        if not ann.get("iscrowd", 0):
            anns.setdefault(ann["image_id"], []).append(ann)
    return anns


def count_boxes(check: DatasetCheck, file_name: str, anns: List[dict], height: int, width: int,
                categories: set) -> None:
    """Add one usable image's boxes to `check` with the training loader's own clipping rule."""
    known = [ann for ann in anns if ann.get("category_id") in categories]
    unknown = len(anns) - len(known)
    stats = BoxCleanupStats()
    kept = len(clean_boxes(known, width, height, stats))
    check.boxes_total += len(anns)
    check.boxes_kept += kept
    check.boxes_clipped += stats.clipped
    check.boxes_dropped += stats.dropped_empty + unknown
    check.unknown_category += unknown
    if stats.clipped:
        check.clipped_files.append(file_name)
    if stats.dropped_empty or unknown:
        check.dropped_files.append(file_name)
    if kept == 0:
        check.without_boxes.append(file_name)
    if kept > check.max_boxes_per_image:
        check.max_boxes_per_image, check.densest_image = kept, file_name


# ------------------------------------------------------------------ entry points
def check_coco_dict(data: dict, images_dir: str, source: str, cache_file: str, split: str = "train") -> DatasetCheck:
    """Check a COCO-format dict whose images lie under `images_dir`; image verdicts cached in `cache_file`."""
    validate_coco_dict(data, source, check_categories=False)
    images = sorted(data["images"], key=lambda image: image["id"])
    file_names = [image_file_name(image) for image in images]
    cached = read_cache(cache_file, images_dir)
    verdicts = check_images(file_names, images_dir, cached)
    check = DatasetCheck(split=split, source=source, images_total=len(images))
    anns_of = split_by_image(data)
    categories = {cat["id"] for cat in data["categories"]}
    for image, file_name in zip(images, file_names):
        verdict = verdicts[file_name]
        if verdict["stamp"] is None:
            check.missing.append(file_name)
        elif verdict["size"] is None:
            check.corrupt.append(file_name)
        elif verdict["size"] != [int(image["height"]), int(image["width"])]:
            check.size_mismatch.append(file_name)
        else:
            check.images_ok += 1
            count_boxes(check, file_name, anns_of.get(image["id"], []), int(image["height"]),
                        int(image["width"]), categories)
    if verdicts != {name: cached.get(name) for name in file_names}:
        write_cache(cache_file, images_dir, verdicts, check)
    return check


def check_split(data_dir: str, split: str, data_format: str = "auto", json_file: Optional[str] = None,
                name: Optional[str] = None) -> DatasetCheck:
    """Check one split of a dataset folder (COCO: `json_file`/`name` default to instances_<split>2017)."""
    from .detection_formats import load_split_for_check

    data, images_dir, source, cache_file = load_split_for_check(data_dir, split, data_format, json_file, name)
    return check_coco_dict(data, images_dir, source, cache_file, split)


def checked_split(data_dir: str, split: str, data_format: str, json_file: Optional[str], name: Optional[str],
                  strict: bool) -> Tuple[dict, str, str, DatasetCheck]:
    """(usable COCO dict, image folder, source, check) of a split; logged, and raised on when strict."""
    from .detection_formats import load_split_for_check

    data, images_dir, source, cache_file = load_split_for_check(data_dir, split, data_format, json_file, name)
    check = check_coco_dict(data, images_dir, source, cache_file, split)
    check.log()
    check.raise_if_strict(strict)
    if check.images_total and not check.images_ok:
        raise DataError(f"dataset check of {source} ({split}): none of its {check.images_total} images is usable "
                        f"(see the table above): check that the images lie in {images_dir}")
    return check.usable_coco(data), images_dir, source, check
