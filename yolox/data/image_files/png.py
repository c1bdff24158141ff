"""PNG structure: the stored size (IHDR) and whether the chunk sequence reaches IEND."""
from typing import Optional, Tuple

__all__ = ["png_size", "png_problem"]

SIGNATURE_BYTES = 8
CHUNK_OVERHEAD = 12  # length, type, CRC


def png_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) from the IHDR chunk, which must come first; None when absent."""
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


def png_problem(data: bytes) -> str:
    """'' when walking the chunks from the signature reaches an IEND chunk (bytes after it are ignored)."""
    pos = SIGNATURE_BYTES
    while pos + 8 <= len(data):
        if data[pos + 4:pos + 8] == b"IEND":
            return ""
        pos += CHUNK_OVERHEAD + int.from_bytes(data[pos:pos + 4], "big")
    return "truncated PNG (the chunks end before an IEND chunk)"
