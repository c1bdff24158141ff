"""TIFF structure (first image directory of a classic TIFF, either byte order): stored size, and whether
the strips or tiles it points to lie inside the file. BigTIFF is left to the decoder."""
import struct
from typing import Dict, Optional, Tuple

__all__ = ["tiff_size", "tiff_problem"]

IMAGE_WIDTH, IMAGE_LENGTH = 256, 257
STRIP_OFFSETS, STRIP_BYTE_COUNTS, TILE_OFFSETS, TILE_BYTE_COUNTS = 273, 279, 324, 325
WANTED = frozenset((IMAGE_WIDTH, IMAGE_LENGTH, STRIP_OFFSETS, STRIP_BYTE_COUNTS, TILE_OFFSETS, TILE_BYTE_COUNTS))
INTEGER_TYPES = {3: "H", 4: "I", 16: "Q"}  # SHORT, LONG, LONG8: the types these tags use
ENTRY_BYTES = 12
PAST_END = "truncated TIFF (its directory points past the end of the file)"


def byte_order(data: bytes) -> Optional[str]:
    """struct's byte order of a classic TIFF ('<' or '>'); None for anything else (BigTIFF included)."""
    return {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])


def first_directory(data: bytes, order: str) -> Optional[Dict[int, Tuple[int, ...]]]:
    """The wanted tags of the first directory; None when the directory or a value lies past the end."""
    offset = struct.unpack(order + "I", data[4:8])[0]
    if offset + 2 > len(data):
        return None
    count = struct.unpack(order + "H", data[offset:offset + 2])[0]
    if offset + 2 + count * ENTRY_BYTES > len(data):
        return None
    tags: Dict[int, Tuple[int, ...]] = {}
    for entry in range(offset + 2, offset + 2 + count * ENTRY_BYTES, ENTRY_BYTES):
        tag, kind, n = struct.unpack(order + "HHI", data[entry:entry + 8])
        if tag not in WANTED or kind not in INTEGER_TYPES:
            continue
        size = struct.calcsize(INTEGER_TYPES[kind]) * n
        start = entry + 8 if size <= 4 else struct.unpack(order + "I", data[entry + 8:entry + 12])[0]
        if start + size > len(data):
            return None
        tags[tag] = struct.unpack(order + INTEGER_TYPES[kind] * n, data[start:start + size])
    return tags


def tiff_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) of the first image; None when it cannot be read from the header."""
    order = byte_order(data)
    tags = first_directory(data, order) if order else None
    if not tags or IMAGE_WIDTH not in tags or IMAGE_LENGTH not in tags:
        return None
    return tags[IMAGE_LENGTH][0], tags[IMAGE_WIDTH][0]


def tiff_problem(data: bytes) -> str:
    """'' unless the first image's directory, or a strip or tile it lists, lies past the end of the file."""
    order = byte_order(data)
    if order is None:
        return ""
    tags = first_directory(data, order)
    if tags is None:
        return PAST_END
    for offsets_tag, counts_tag in ((STRIP_OFFSETS, STRIP_BYTE_COUNTS), (TILE_OFFSETS, TILE_BYTE_COUNTS)):
        offsets, counts = tags.get(offsets_tag, ()), tags.get(counts_tag, ())
        if offsets and len(offsets) == len(counts) and max(o + c for o, c in zip(offsets, counts)) > len(data):
            return "truncated TIFF (image data past the end of the file)"
    return ""
