"""A plain picture's size from its header, so that one too large to decode whole is refused before decoding.

OpenCV decodes a PNG, JPEG or BMP whole; a picture above MAX_PICTURE_PIXELS belongs in a tiled GeoTIFF,
which is read window by window. WebP cannot exceed 16383 x 16383, below the limit, so it is not parsed.
"""
import os
import struct
from typing import BinaryIO, Optional, Tuple

from yolox.utils.user_errors import UserError

__all__ = ["MAX_PICTURE_PIXELS", "PictureTooLarge", "picture_size", "check_picture_size"]

# 2^28 pixels decode to 768 MiB of BGR (1.5 GiB at 16 bit) before the first tile: more than a laptop
# spares beside the model; OpenCV's own ceiling (CV_IO_MAX_IMAGE_PIXELS) is 2^30
MAX_PICTURE_PIXELS = 1 << 28
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (Huffman tables), C8 and CC (arithmetic) do not
JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class PictureTooLarge(UserError):
    """A PNG/JPEG/BMP too large to decode whole."""


def _jpeg_size(handle: BinaryIO) -> Optional[Tuple[int, int]]:
    """Walk the JPEG markers to the first start-of-frame segment."""
    handle.seek(2)
    while True:
        marker = handle.read(2)
        if len(marker) < 2 or marker[0] != 0xFF:
            return None
        if marker[1] in (0xD8, 0x01) or 0xD0 <= marker[1] <= 0xD7:     # no length field
            continue
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            return None
        length = struct.unpack(">H", length_bytes)[0]
        if marker[1] in JPEG_SOF:
            segment = handle.read(5)
            if len(segment) < 5:
                return None
            height, width = struct.unpack(">HH", segment[1:5])
            return width, height
        handle.seek(length - 2, os.SEEK_CUR)


def picture_size(path: str) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG, JPEG or BMP header (by content, not by name); None for other files."""
    with open(path, "rb") as handle:
        head = handle.read(26)
        if head.startswith(PNG_MAGIC) and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head.startswith(b"BM") and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)        # a negative height means rows stored top-down
        if head.startswith(b"\xff\xd8"):
            return _jpeg_size(handle)
    return None


def check_picture_size(path: str, limit: int = MAX_PICTURE_PIXELS) -> None:
    """Refuse, in one line with the conversion command, a picture too large to decode whole."""
    size = picture_size(path)
    if size is None or size[0] * size[1] <= limit:
        return
    stem = os.path.splitext(path)[0]
    raise PictureTooLarge(
        f"{path}: {size[0]} x {size[1]} pixels is more than a plain picture can be decoded whole "
        f"({limit:,} pixels); convert it to a tiled GeoTIFF, which is read window by window: "
        f"gdal_translate -co TILED=YES -co COMPRESS=DEFLATE -co BIGTIFF=IF_SAFER {path} {stem}.tif")
