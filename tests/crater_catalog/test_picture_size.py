"""A plain picture too large to decode whole is refused from its header, in one line naming the conversion."""
import struct

import cv2
import numpy as np
import pytest

from yolox.crater_catalog.picture_size import MAX_PICTURE_PIXELS, PictureTooLarge, check_picture_size, picture_size
from yolox.crater_catalog.sources import open_source

BIG = (20_000, 15_000)          # 3e8 pixels, above the limit


def small_picture(path, ext):
    image = np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)
    cv2.imwrite(str(path.with_suffix(ext)), image)
    return path.with_suffix(ext)


def claim_size(path, width, height):
    """Rewrite the size fields of a PNG, JPEG or BMP header (the pixel data no longer matches: never decoded)."""
    data = bytearray(path.read_bytes())
    if data.startswith(b"\x89PNG"):
        data[16:24] = struct.pack(">II", width, height)
    elif data.startswith(b"BM"):
        data[18:26] = struct.pack("<ii", width, height)
    else:
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_header_size_by_content(tmp_path, ext):
    path = small_picture(tmp_path / "field", ext)
    assert picture_size(str(path)) == (40, 30)
    renamed = path.rename(tmp_path / "misnamed.tif")     # the name does not matter, the content does
    assert picture_size(str(renamed)) == (40, 30)
    check_picture_size(str(renamed))


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_too_large_picture_is_one_line_pointing_to_geotiff(tmp_path, ext):
    path = small_picture(tmp_path / "huge", ext)
    claim_size(path, *BIG)
    assert BIG[0] * BIG[1] > MAX_PICTURE_PIXELS
    with pytest.raises(PictureTooLarge) as refused:
        open_source(str(path))
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "gdal_translate" in message and "TILED=YES" in message


def test_limit_is_the_stated_constant(tmp_path):
    path = small_picture(tmp_path / "edge", ".png")
    check_picture_size(str(path), limit=40 * 30)
    with pytest.raises(PictureTooLarge):
        check_picture_size(str(path), limit=40 * 30 - 1)
