"""What one image file's bytes say before decoding: its kind, stored size and whether it is cut short."""
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from .bmp_webp import bmp_size, webp_size
from .jpeg import jpeg_problem, jpeg_size
from .kind import HEAD_BYTES, kind_of_content
from .png import png_problem, png_size
from .tiff import tiff_problem, tiff_size

__all__ = ["ImageFacts", "inspect_bytes", "header_size"]

Size = Tuple[int, int]
SIZE_READERS: Dict[str, Callable[[bytes], Optional[Size]]] = {
    "jpeg": jpeg_size, "png": png_size, "tiff": tiff_size, "bmp": bmp_size, "webp": webp_size,
}
# Only formats whose end can be checked without decoding; the others are judged by decoding alone.
TRUNCATION_TESTS: Dict[str, Callable[[bytes], str]] = {"jpeg": jpeg_problem, "png": png_problem, "tiff": tiff_problem}
HEADER_PREFIX_BYTES = 1 << 18  # enough for the size in nearly every JPEG/PNG/BMP/WebP header


@dataclass(frozen=True)
class ImageFacts:
    """kind: 'jpeg', 'png', 'tiff', 'bmp', 'webp' or None (from the content, never the name);
    size: (height, width) of the stored pixels from the header, None when unknown;
    problem: '' or why the file is cut short, e.g. 'truncated PNG (...)'."""

    kind: Optional[str]
    size: Optional[Size]
    problem: str


def inspect_bytes(data: bytes) -> ImageFacts:
    """The facts of a whole image file's bytes."""
    kind = kind_of_content(data[:HEAD_BYTES])
    if kind is None:
        return ImageFacts(None, None, "")
    test = TRUNCATION_TESTS.get(kind)
    return ImageFacts(kind, SIZE_READERS[kind](data), test(data) if test else "")


def header_size(path: str) -> Optional[Size]:
    """(height, width) of the stored pixels read from the file's header (the whole file only when the
    size lies further in, as in a TIFF whose directory follows its pixels); None when unknown."""
    with open(path, "rb") as f:
        data = f.read(HEADER_PREFIX_BYTES)
        kind = kind_of_content(data[:HEAD_BYTES])
        if kind is None:
            return None
        size = SIZE_READERS[kind](data)
        if size is None and len(data) == HEADER_PREFIX_BYTES:
            size = SIZE_READERS[kind](data + f.read())
    return size
