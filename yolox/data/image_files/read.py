"""Reading an image file into the model's pixels: BGR uint8, 3 channels, decided by content not name.

- Decoding is OpenCV's, by content, so a PNG named .jpg reads as the PNG it is.
- Grey images become 3 equal channels; an alpha channel is dropped; CMYK JPEGs come out as BGR.
- 16-bit and float images are stretched to 8 bits by the rule in .intensity (shared with detection).
- EXIF orientation is NOT applied: the stored pixels are read. Boxes in crater sets are drawn on the
  stored pixels (most labelling and tiling tools, and our own tiler, never rotate), and whole-image
  detection reads stored pixels too (IMREAD_UNCHANGED ignores orientation), so training, evaluation and
  detection see the same frame. An image whose annotated size is its rotated size is reported by the
  dataset check as of another size than annotated.
- A JPEG, PNG or TIFF cut short is unreadable (OpenCV may decode it partly and fill the rest with grey).
"""
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from .facts import ImageFacts, inspect_bytes
from .intensity import stretch_to_uint8

__all__ = ["DECODE_FLAGS", "ImageRead", "read_image", "read_image_file", "to_bgr_uint8"]

DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | cv2.IMREAD_IGNORE_ORIENTATION


@dataclass(frozen=True)
class ImageRead:
    """pixels: HxWx3 BGR uint8, None when unreadable; facts: what the bytes said; problem: '' or why not read."""

    pixels: Optional[np.ndarray]
    facts: ImageFacts
    problem: str


def to_bgr_uint8(pixels: np.ndarray) -> np.ndarray:
    """A decoded image (grey or BGR, any depth) as HxWx3 BGR uint8."""
    if pixels.dtype != np.uint8:
        pixels = stretch_to_uint8(pixels)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    return pixels[:, :, :3] if pixels.shape[2] > 3 else pixels


def read_image_file(path: str) -> ImageRead:
    """Read and decode one image file; never raises for a bad file (the problem says what is wrong)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return ImageRead(None, ImageFacts(None, None, ""), f"cannot be opened ({error.strerror})")
    facts = inspect_bytes(data)
    if facts.problem:
        return ImageRead(None, facts, facts.problem)
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), DECODE_FLAGS) if data else None
    if pixels is None:
        return ImageRead(None, facts, "cannot be decoded: the file is corrupt or not an image")
    return ImageRead(to_bgr_uint8(pixels), facts, "")


def read_image(path: str) -> Optional[np.ndarray]:
    """HxWx3 BGR uint8 pixels of an image file; None when it is missing, corrupt or cut short."""
    return read_image_file(path).pixels
