#!/usr/bin/env python3
"""Convert a YOLO txt (Roboflow) or crater CSV dataset to a COCO folder.

    python tools/convert_craters.py SRC --out DST [--format auto|yolo|csv] [--splits train val] [--copy]

writes DST/annotations/instances_<split>2017.json and DST/<split>2017/ (images symlinked, or
copied with --copy), the layout every COCO exp reads.
"""
import json
import os
import shutil
import tempfile
from typing import List, Optional

from loguru import logger

from yolox.data.datasets.detection_formats import (
    available_splits, load_split_as_coco, resolve_format,
)
from yolox.utils.user_errors import CLIParser, run_cli


def write_json_atomic(data: dict, path: str) -> None:
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise


def place_images(data: dict, images_dir: str, target_dir: str, copy: bool) -> None:
    os.makedirs(target_dir, exist_ok=True)
    for image in data["images"]:
        source = os.path.abspath(os.path.join(images_dir, image["file_name"]))
        target = os.path.join(target_dir, image["file_name"])
        if os.path.lexists(target):
            os.remove(target)
        if copy:
            shutil.copy2(source, target)
        else:
            os.symlink(source, target)


def convert(src: str, out: str, data_format: str = "auto", splits: Optional[List[str]] = None,
            copy: bool = False) -> List[str]:
    """Convert the given (default: all found) splits of `src`; return the json files written."""
    data_format = resolve_format(src, data_format)
    splits = splits or available_splits(src, data_format)
    if not splits:
        raise ValueError(f"{src}: no train/val/test split found to convert")
    written = []
    for split in splits:
        data, images_dir = load_split_as_coco(src, split, data_format)
        place_images(data, images_dir, os.path.join(out, f"{split}2017"), copy)
        json_path = os.path.join(out, "annotations", f"instances_{split}2017.json")
        write_json_atomic(data, json_path)
        logger.info(f"{split}: {len(data['images'])} images, {len(data['annotations'])} boxes, "
                    f"{len(data['categories'])} classes -> {json_path}")
        written.append(json_path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = CLIParser(description="Convert a YOLO txt or crater CSV dataset to COCO json")
    parser.add_argument("src", help="dataset folder (data.yaml for YOLO txt, <split>.csv for crater CSV)")
    parser.add_argument("--out", required=True, help="output COCO folder")
    parser.add_argument("--format", default="auto", choices=("auto", "yolo", "csv"), help="source format")
    parser.add_argument("--splits", nargs="+", choices=("train", "val", "test"), help="splits (default: all found)")
    parser.add_argument("--copy", action="store_true", help="copy images instead of symlinking them")
    args = parser.parse_args(argv)
    try:
        convert(args.src, args.out, args.format, args.splits, args.copy)
    except (OSError, ValueError) as err:
        logger.error(str(err))
        return 1
    return 0


def cli() -> None:
    """The `yolox-convert-craters` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
