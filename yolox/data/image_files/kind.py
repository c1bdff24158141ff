"""What an image file is, from its first bytes (its content), and what its name claims it is."""
import os
from typing import Optional

__all__ = ["KINDS", "KIND_LABELS", "HEAD_BYTES", "kind_of_content", "kind_of_name", "misnaming"]

KINDS = ("jpeg", "png", "tiff", "bmp", "webp")
KIND_LABELS = {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF", "bmp": "BMP", "webp": "WebP"}
HEAD_BYTES = 12  # enough for every signature below
SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"II*\x00", "tiff"),          # little endian
    (b"MM\x00*", "tiff"),          # big endian
    (b"II+\x00", "tiff"),          # BigTIFF, little endian
    (b"MM\x00+", "tiff"),          # BigTIFF, big endian
    (b"BM", "bmp"),
)
EXTENSION_KINDS = {
    ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".jfif": "jpeg", ".png": "png", ".tif": "tiff",
    ".tiff": "tiff", ".bmp": "bmp", ".dib": "bmp", ".webp": "webp",
}


def kind_of_content(head: bytes) -> Optional[str]:
    """'jpeg', 'png', 'tiff', 'bmp' or 'webp' from the file's first HEAD_BYTES bytes; None for anything else."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for signature, kind in SIGNATURES:
        if head.startswith(signature):
            return kind
    return None


def kind_of_name(path: str) -> Optional[str]:
    """The kind the file's extension claims (case-insensitive); None for an extension we do not map."""
    return EXTENSION_KINDS.get(os.path.splitext(path)[1].lower())


def misnaming(path: str, content_kind: Optional[str]) -> str:
    """'' when name and content agree (or either is unknown), else e.g. 'PNG files named .jpg'."""
    claimed = kind_of_name(path)
    if content_kind is None or claimed is None or claimed == content_kind:
        return ""
    return f"{KIND_LABELS[content_kind]} files named {os.path.splitext(path)[1].lower()}"
