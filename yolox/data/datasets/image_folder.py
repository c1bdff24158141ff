"""Helpers shared by the folder-based annotation formats: image listing, sizes, COCO records."""
import os
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# EXIF orientations that rotate by 90 degrees: OpenCV applies them when reading, so swap w and h
EXIF_TRANSPOSED = (5, 6, 7, 8)
EXIF_ORIENTATION_TAG = 0x0112
JPEG_EOI = b"\xff\xd9"
JPEG_TAIL_BYTES = 4096  # some writers append metadata after the end-of-image marker


def list_images(folder: str) -> List[str]:
    """Image file names directly inside `folder`, sorted."""
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))


def read_image(path: str) -> Optional[np.ndarray]:
    """The BGR image as cv2.imread gives it; None when the file is missing, corrupt or a truncated JPEG
    (which OpenCV would decode partly, filling the rest with grey)."""
    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if raw.size == 0:
        return None
    if path.lower().endswith((".jpg", ".jpeg")) and JPEG_EOI not in raw[-JPEG_TAIL_BYTES:].tobytes():
        return None
    return cv2.imdecode(raw, cv2.IMREAD_COLOR)


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) as cv2.imread will see it, read from the file header where PIL can."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(EXIF_ORIENTATION_TAG) in EXIF_TRANSPOSED:
                width, height = height, width
            return height, width
    except Exception:  # no PIL, or a file PIL cannot parse (e.g. some GeoTIFFs): let OpenCV decide
        pass
    img = cv2.imread(path)
    if img is None:
        raise DataError(f"image {path} cannot be read: the file is corrupt or not an image; replace or remove it")
    return img.shape[0], img.shape[1]


def listed_image_size(path: str) -> Tuple[int, int]:
    """image_size, or (0, 0) for a file that cannot be read: the dataset check reports and skips it."""
    try:
        return image_size(path)
    except DataError:
        return 0, 0


def empty_coco(class_names: List[str]) -> dict:
    return {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]}


def add_image(data: dict, file_name: str, height: int, width: int) -> int:
    image_id = len(data["images"]) + 1
    data["images"].append({"id": image_id, "file_name": file_name, "height": height, "width": width})
    return image_id


def add_box(data: dict, image_id: int, class_index: int, x: float, y: float, w: float, h: float) -> None:
    """Append an [x, y, w, h] pixel box of 0-based class `class_index`."""
    data["annotations"].append({
        "id": len(data["annotations"]) + 1, "image_id": image_id, "category_id": class_index + 1,
        "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0,
    })
