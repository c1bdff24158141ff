"""JPEG structure: the stored size (from the frame header) and whether the file ends after its scans."""
from typing import Iterator, Optional, Tuple

__all__ = ["jpeg_size", "jpeg_problem"]

# start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic)
SOF_MARKERS = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
STANDALONE_MARKERS = frozenset((0x01, 0xD8, *range(0xD0, 0xD8)))  # no length field: TEM, SOI, RST0-7
SOS = 0xDA
EOI = b"\xff\xd9"


def segments(data: bytes) -> Iterator[Tuple[int, int, int]]:
    """(marker, payload start, payload end) of each header segment from SOI up to and including the first SOS."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return  # not a marker where one must be: leave the verdict to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in STANDALONE_MARKERS:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        yield marker, pos + 4, end
        if marker == SOS:
            return
        pos = end


def jpeg_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(height, width) of the stored pixels from the first frame header; None when not found."""
    for marker, start, end in segments(data):
        if marker in SOF_MARKERS and end <= len(data) and end - start >= 5:
            height = int.from_bytes(data[start + 1:start + 3], "big")
            width = int.from_bytes(data[start + 3:start + 5], "big")
            return (height, width) if height and width else None
    return None


def jpeg_problem(data: bytes) -> str:
    """'' unless the file is cut short: no end-of-image marker after the first scan (entropy-coded data
    cannot hold one, and an EXIF thumbnail's own marker lies before the scan, so trailing metadata and
    progressive scans both pass). When the scan cannot be found the decoder decides."""
    scan_end = next((end for marker, _, end in segments(data) if marker == SOS), None)
    if scan_end is None or data.find(EOI, scan_end) >= 0:
        return ""
    return "truncated JPEG (no end-of-image marker after the image data)"
