"""A COCO-layout crater set with fewer training tiles: N of them chosen by a seed, the validation split unchanged.

The subset folder holds its own annotations (the training file filtered, the validation file copied byte for
byte) and links to the source's image folders, so it costs no copies of the images.
"""
import json
import os
import random
import shutil
from pathlib import Path
from typing import Dict

__all__ = ["make_coco_subset", "TRAIN_ANN", "VAL_ANN"]

TRAIN_ANN = "instances_train2017.json"
VAL_ANN = "instances_val2017.json"
IMAGE_FOLDERS = ("train2017", "val2017")


def make_coco_subset(source: str, target: str, tiles: int, seed: int = 0) -> Path:
    """Write under `target` the COCO set of `source` with `tiles` training images (chosen by `seed`); its path."""
    source_dir, target_dir = Path(source).resolve(), Path(target)
    train = _read_annotations(source_dir / "annotations" / TRAIN_ANN)
    image_ids = sorted(image["id"] for image in train["images"])
    if not 0 < tiles <= len(image_ids):
        raise SystemExit(f"--subset {tiles}: {source_dir / 'annotations' / TRAIN_ANN} has {len(image_ids)} "
                         f"training tiles; give a count from 1 to {len(image_ids)}")
    kept = set(random.Random(seed).sample(image_ids, tiles))
    subset = dict(train, images=[image for image in train["images"] if image["id"] in kept],
                  annotations=[box for box in train["annotations"] if box["image_id"] in kept])
    (target_dir / "annotations").mkdir(parents=True, exist_ok=True)
    with open(target_dir / "annotations" / TRAIN_ANN, "w") as handle:
        json.dump(subset, handle)
    shutil.copyfile(source_dir / "annotations" / VAL_ANN, target_dir / "annotations" / VAL_ANN)
    for folder in IMAGE_FOLDERS:
        link = target_dir / folder
        if link.is_symlink():
            link.unlink()
        link.symlink_to(source_dir / folder, target_is_directory=True)
    return target_dir


def _read_annotations(path: Path) -> Dict:
    if not path.is_file():
        raise SystemExit(f"--subset: {path} not found; --data must be a COCO-layout folder "
                         f"(annotations/{TRAIN_ANN}, train2017/, val2017/)")
    with open(path) as handle:
        return json.load(handle)
