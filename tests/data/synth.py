"""Small synthetic detection sets written to disk for the data tests."""
import json
import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

# (file name, (height, width), [(x1, y1, w, h, category_id), ...]); sizes are powers of two and
# coordinates small integers/halves so every format stores them exactly.
CRATER_IMAGES: List[Tuple[str, Tuple[int, int], List[Tuple[float, ...]]]] = [
    ("a.png", (64, 64), [(8, 8, 16, 16, 1), (40, 30, 8, 8, 1)]),
    ("b.png", (32, 64), [(2, 4, 12, 12, 2), (50.5, 10.5, 4, 4, 1), (20, 16, 16, 16, 2)]),
    ("c.png", (64, 32), []),
]
CRATER_NAMES = {1: "crater", 2: "ghost"}


def make_image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def coco_dict(images=CRATER_IMAGES, names: Dict[int, str] = CRATER_NAMES) -> dict:
    data = {"images": [], "annotations": [], "categories": [{"id": k, "name": v} for k, v in names.items()]}
    for image_id, (file_name, (h, w), boxes) in enumerate(images, start=1):
        data["images"].append({"id": image_id, "file_name": file_name, "height": h, "width": w})
        for x, y, bw, bh, cat in boxes:
            data["annotations"].append({
                "id": len(data["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
            })
    return data


def write_images(folder: Path, images=CRATER_IMAGES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (file_name, (h, w), _) in enumerate(images):
        cv2.imwrite(str(folder / file_name), make_image(h, w, seed))


def write_coco(root: Path, data: dict = None, images=CRATER_IMAGES, split: str = "train") -> Path:
    """COCO layout under root: annotations/instances_<split>2017.json and <split>2017/ images."""
    data = coco_dict(images) if data is None else data
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(data))
    write_images(root / f"{split}2017", images)
    return root


def write_yolo(root: Path, images=CRATER_IMAGES, names: Dict[int, str] = CRATER_NAMES,
               split_dir: str = "train") -> Path:
    """Roboflow layout: data.yaml, <split_dir>/images and <split_dir>/labels (normalised cx cy w h)."""
    write_images(root / split_dir / "images", images)
    labels = root / split_dir / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    for file_name, (h, w), boxes in images:
        if not boxes:
            continue  # Roboflow leaves background images without a label file
        lines = [f"{cat - 1} {(x + bw / 2) / w!r} {(y + bh / 2) / h!r} {bw / w!r} {bh / h!r}"
                 for x, y, bw, bh, cat in boxes]
        (labels / (os.path.splitext(file_name)[0] + ".txt")).write_text("\n".join(lines) + "\n")
    ordered = [names[k] for k in sorted(names)]
    (root / "data.yaml").write_text(
        f"train: ../{split_dir}/images\nval: ../valid/images\n\nnc: {len(ordered)}\n"
        f"names: [{', '.join(repr(n) for n in ordered)}]\n"
    )
    return root


def write_csv(root: Path, images=CRATER_IMAGES, names: Dict[int, str] = CRATER_NAMES, split: str = "train") -> Path:
    """Crater catalogue layout: <split>.csv (image,x,y,diameter,class) and <split>/ images."""
    write_images(root / split, images)
    rows = ["image,x,y,diameter,class"]
    for file_name, _, boxes in images:
        for x, y, bw, bh, cat in boxes:
            assert bw == bh, "a crater is round: square boxes only"
            rows.append(f"{file_name},{x + bw / 2!r},{y + bh / 2!r},{bw!r},{names[cat]}")
    (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def random_coco_set(root: Path, num_images: int = 8, seed: int = 0,
                    sizes: Sequence[Tuple[int, int]] = ((48, 64), (64, 48), (40, 40))) -> Path:
    """COCO set of random images with 0-6 random boxes each (2 categories, ids 3 and 7)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(num_images):
        h, w = sizes[i % len(sizes)]
        boxes = []
        for _ in range(int(rng.integers(0, 7)) if i else 3):
            bw, bh = rng.uniform(4, w / 2), rng.uniform(4, h / 2)
            boxes.append((rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh, int(rng.choice([3, 7]))))
        images.append((f"img{i}.jpg", (h, w), boxes))
    return write_coco(root, coco_dict(images, {3: "small", 7: "big"}), images)
