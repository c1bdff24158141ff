"""Helpers shared by the folder-based annotation formats: image listing, sizes, COCO records."""
import os
from typing import List, Tuple

from ..errors import DataError
from ..image_files import header_size, read_image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
APPLEDOUBLE_PREFIX = "._"  # macOS metadata files copied beside each image, with the image's extension


def list_images(folder: str) -> List[str]:
    """Image file names directly inside `folder`, sorted (macOS "._" metadata files left out)."""
    return sorted(f for f in os.listdir(folder)
                  if f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(APPLEDOUBLE_PREFIX)
                  and os.path.isfile(os.path.join(folder, f)))


def image_size(path: str) -> Tuple[int, int]:
    """(height, width) of the stored pixels, as read_image decodes them: from the header, else by decoding."""
    try:
        size = header_size(path)
    except OSError:
        size = None
    if size:
        return size
    img = read_image(path)
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
