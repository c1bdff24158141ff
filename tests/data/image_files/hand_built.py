"""Small image files OpenCV cannot write, built byte by byte: a CMYK JPEG, EXIF orientation, TIFFs of
either byte order with the image directory before the pixels."""
import struct
from typing import List, Sequence

import numpy as np


def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def pack_bits(bits: List[int]) -> bytes:
    """Entropy-coded bytes: padded with 1-bits, every 0xFF followed by a stuffed 0x00."""
    bits = bits + [1] * (-len(bits) % 8)
    out = bytearray()
    for start in range(0, len(bits), 8):
        out.append(int("".join(map(str, bits[start:start + 8])), 2))
        if out[-1] == 0xFF:
            out.append(0)
    return bytes(out)


def flat_cmyk_jpeg(blocks: Sequence[Sequence[int]]) -> bytes:
    """Baseline Adobe CMYK JPEG, 8 px high, one flat 8x8 block per (c, m, y, k) stored value, left to right.
    All quantisers are 1, so a flat block is its DC coefficient 8 * (value - 128) and an end-of-block."""
    dqt = segment(0xDB, bytes([0]) + bytes([1] * 64))
    sof = segment(0xC0, struct.pack(">BHHB", 8, 8, 8 * len(blocks), 4)
                  + b"".join(bytes([i + 1, 0x11, 0]) for i in range(4)))
    # DC table: the 12 magnitude categories with 4-bit codes; AC table: only end-of-block, code "0"
    dht = segment(0xC4, bytes([0x00, 0, 0, 0, 12] + [0] * 12) + bytes(range(12))
                  + bytes([0x10, 1] + [0] * 15) + bytes([0]))
    sos = segment(0xDA, bytes([4]) + b"".join(bytes([i + 1, 0]) for i in range(4)) + bytes([0, 63, 0]))
    adobe = segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))  # transform 0: plain CMYK
    bits: List[int] = []
    previous = [0] * 4
    for block in blocks:
        for component, value in enumerate(block):
            diff, previous[component] = 8 * (value - 128) - previous[component], 8 * (value - 128)
            size = abs(diff).bit_length()
            bits += [(size >> i) & 1 for i in (3, 2, 1, 0)]
            magnitude = diff if diff > 0 else diff + (1 << size) - 1
            bits += [(magnitude >> i) & 1 for i in range(size - 1, -1, -1)]
            bits.append(0)  # end of block
    return b"\xff\xd8" + adobe + dqt + sof + dht + sos + pack_bits(bits) + b"\xff\xd9"


def with_exif_orientation(jpeg: bytes, orientation: int, thumbnail: bytes = b"") -> bytes:
    """`jpeg` with an APP1 EXIF segment holding the Orientation tag (and `thumbnail` bytes after it)."""
    ifd = struct.pack("<HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    return jpeg[:2] + segment(0xE1, b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + thumbnail) + jpeg[2:]


def grey_tiff(pixels: np.ndarray, big_endian: bool = False) -> bytes:
    """Uncompressed single-strip grey TIFF (uint8 or uint16), directory first, pixels last."""
    order = ">" if big_endian else "<"
    height, width = pixels.shape
    bits = pixels.dtype.itemsize * 8
    entries = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1),
               (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, pixels.nbytes)]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    body = struct.pack(order + "H", len(entries))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack(order + ("H" if kind == 3 else "I"), value).ljust(4, b"\x00")
        body += struct.pack(order + "HHI", tag, kind, 1) + packed
    header = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(order + "I", 8)
    return header + body + struct.pack(order + "I", 0) + pixels.astype(pixels.dtype.newbyteorder(order)).tobytes()
