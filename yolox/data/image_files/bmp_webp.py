"""Stored sizes of BMP and WebP files from their headers (their integrity is left to the decoder)."""
from typing import Optional, Tuple

__all__ = ["bmp_size", "webp_size"]

BMP_CORE_HEADER = 12  # OS/2 1.x header: 16-bit width and height


def bmp_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width); a negative stored height (top-down rows) counts by its magnitude."""
    if len(data) < 26:
        return None
    if int.from_bytes(data[14:18], "little") == BMP_CORE_HEADER:
        return int.from_bytes(data[20:22], "little"), int.from_bytes(data[18:20], "little")
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return (abs(height), abs(width)) if width and height else None


def webp_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) from the first chunk: VP8X (extended), VP8L (lossless) or VP8 (lossy)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[27:30], "little"), 1 + int.from_bytes(data[24:27], "little")
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[28:30], "little") & 0x3FFF, int.from_bytes(data[26:28], "little") & 0x3FFF
    return None
