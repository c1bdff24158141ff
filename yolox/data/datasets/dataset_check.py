"""Dataset check before training, for every format we read (COCO json, YOLO txt, crater CSV).

Every image is read once (exists, decodes by content whatever its name, is not cut short, decoded size
equals the annotated size; see yolox.data.image_files) and every box is
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
    misnamed                       {"PNG files named .jpg": [file names], ...}: images whose name claims
                                   another type than their content; read by content, never skipped
    max_boxes_per_image            boxes kept in the densest usable image (0 when none has a box)
    densest_image                  its file name ("" when none)
    bad_images                     missing + corrupt + size_mismatch, in that order (property)
    name_notes()                   one line per misnaming, e.g. "12 of 120 images are PNG files
                                   named .jpg: read by content"
    summary_table()                the logged table: counts and up to 20 named files per kind
    log()                          log the table (a warning when something is bad)
    raise_if_strict(strict)        with strict, a one-line DataError naming the bad images
    usable_coco(data)              the dict without bad images and boxes of unknown category
"""
import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

from loguru import logger
from tabulate import tabulate

from ..errors import DataError
from ..image_files import misnaming, read_image_file
from .check_cache import cache_file_for, read_cache, write_cache  # cache_file_for re-exported (public API)
from .coco import BoxCleanupStats, clean_boxes, validate_coco_dict
from .split_loading import load_split_for_check

__all__ = ["DatasetCheck", "check_coco_dict", "check_split", "checked_split", "cache_file_for", "NAMED_FILES"]

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
    misnamed: Dict[str, List[str]] = dataclasses.field(default_factory=dict)
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
            *((f"images that are {note} (read by content, kept)", len(names), name_some(names))
              for note, names in self.misnamed.items()),
            ("images without boxes (kept as background)", len(self.without_boxes), name_some(self.without_boxes)),
            ("boxes kept", self.boxes_kept, ""),
            ("boxes clipped to their image (kept)", self.boxes_clipped, name_some(self.clipped_files)),
            ("boxes dropped (no area, or unknown category)", self.boxes_dropped, name_some(self.dropped_files)),
            ("most boxes in one image", self.max_boxes_per_image, self.densest_image),
        ]
        return tabulate(rows, headers=["dataset check", "count", "files"], tablefmt="github")

    def name_notes(self) -> List[str]:
        """One line per kind of misnaming, e.g. '12 of 120 images are PNG files named .jpg: read by content'."""
        return [f"{len(names)} of {self.images_total} images are {note}: read by content"
                for note, names in self.misnamed.items()]

    def log(self) -> None:
        text = f"dataset check of {self.source}, {self.images_total} images:\n" + self.summary_table()
        text += "".join(f"\n{note}" for note in self.name_notes())
        if self.bad_images:
            logger.warning(text + f"\n{len(self.bad_images)} bad image(s) are skipped")
        else:
            logger.info(text)

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


def content_verdict(path: str) -> dict:
    """{"size": [h, w] as the training loader decodes it, or None when unreadable; "kind": content type or None}."""
    read = read_image_file(path)
    size = None if read.pixels is None else [int(read.pixels.shape[0]), int(read.pixels.shape[1])]
    return {"size": size, "kind": read.facts.kind}


def image_verdict(path: str) -> dict:
    """{"stamp": [size, mtime_ns] or None, "size": [h, w] or None, "kind": ...} of one image file."""
    stamp = file_stamp(path)
    return {"stamp": stamp, **(content_verdict(path) if stamp is not None else {"size": None, "kind": None})}


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
        note = misnaming(file_name, verdict.get("kind"))
        if note:
            check.misnamed.setdefault(note, []).append(file_name)
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
        write_cache(cache_file, images_dir, verdicts, dataclasses.asdict(check))
    return check


def check_split(data_dir: str, split: str, data_format: str = "auto", json_file: Optional[str] = None,
                name: Optional[str] = None) -> DatasetCheck:
    """Check one split of a dataset folder (COCO: `json_file`/`name` default to instances_<split>2017)."""
    data, images_dir, source, cache_file = load_split_for_check(data_dir, split, data_format, json_file, name)
    return check_coco_dict(data, images_dir, source, cache_file, split)


def checked_split(data_dir: str, split: str, data_format: str, json_file: Optional[str], name: Optional[str],
                  strict: bool) -> Tuple[dict, str, str, DatasetCheck]:
    """(usable COCO dict, image folder, source, check) of a split; logged, and raised on when strict."""
    data, images_dir, source, cache_file = load_split_for_check(data_dir, split, data_format, json_file, name)
    check = check_coco_dict(data, images_dir, source, cache_file, split)
    check.log()
    check.raise_if_strict(strict)
    if check.images_total and not check.images_ok:
        raise DataError(f"dataset check of {source} ({split}): none of its {check.images_total} images is usable "
                        f"(see the table above): check that the images lie in {images_dir}")
    return check.usable_coco(data), images_dir, source, check
