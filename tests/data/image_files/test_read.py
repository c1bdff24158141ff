"""read_image: BGR uint8 with 3 channels for every kind of tile a crater set holds, decided by content."""
import cv2
import numpy as np
import pytest

from tests.data.image_files.hand_built import flat_cmyk_jpeg, grey_tiff, with_exif_orientation
from yolox.data.image_files import IntensityScale, read_image, read_image_file

RAMP16 = (np.arange(20 * 30, dtype=np.uint32).reshape(20, 30) * 100 + 1000).astype(np.uint16)


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def encoded(ext: str, pixels: np.ndarray, params=()) -> bytes:
    return cv2.imencode(ext, pixels, list(params))[1].tobytes()


def stretched(raw: np.ndarray) -> np.ndarray:
    return IntensityScale.measure(raw).to_uint8(raw)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_grey_is_stretched_by_the_detection_rule(tmp_path, ext):
    img = read_image(write(tmp_path, "tile" + ext, encoded(ext, RAMP16)))
    assert img.shape == (20, 30, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:, :, 0], stretched(RAMP16))
    assert (img[:, :, 0] == img[:, :, 2]).all() and img.min() == 0 and img.max() == 255


def test_16_bit_big_endian_tiff_and_8_bit_grey(tmp_path):
    img = read_image(write(tmp_path, "be.tif", grey_tiff(RAMP16, big_endian=True)))
    np.testing.assert_array_equal(img[:, :, 1], stretched(RAMP16))
    grey8 = (np.arange(600) % 251).astype(np.uint8).reshape(20, 30)
    for ext in (".png", ".tif"):
        img = read_image(write(tmp_path, "g8" + ext, encoded(ext, grey8)))
        assert img.shape == (20, 30, 3)
        np.testing.assert_array_equal(img[:, :, 2], grey8)  # 8-bit passes unchanged


def test_float_tiff_ignores_nan_when_stretching(tmp_path):
    raw = RAMP16.astype(np.float32) / 7
    raw[0, 0] = np.nan
    img = read_image(write(tmp_path, "f.tif", encoded(".tif", raw)))
    finite = RAMP16.astype(np.float32) / 7
    finite[0, 0] = finite[0, 1]  # the NaN's neighbour: the same percentiles as the finite values alone
    expected = stretched(finite)
    expected[0, 0] = 0
    assert img.shape == (20, 30, 3) and img[0, 0, 0] == 0
    np.testing.assert_allclose(img[:, :, 0].astype(int), expected, atol=1)


def test_cmyk_jpeg_reads_as_bgr(tmp_path):
    # Adobe CMYK stores ink inverted: 255 everywhere is white, K=0 is black, C=0 is cyan
    img = read_image(write(tmp_path, "cmyk.jpg", flat_cmyk_jpeg([(255, 255, 255, 255), (255, 255, 255, 0),
                                                                  (0, 255, 255, 255)])))
    assert img.shape == (8, 24, 3)
    np.testing.assert_allclose(img[4, ::8].astype(int), [[255, 255, 255], [0, 0, 0], [255, 255, 0]], atol=2)


def test_progressive_jpeg(tmp_path):
    pixels = np.zeros((16, 24, 3), np.uint8)
    pixels[:, :, 1] = np.arange(24) * 10
    data = encoded(".jpg", pixels, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 95))
    assert b"\xff\xc2" in data  # a progressive frame
    img = read_image(write(tmp_path, "p.jpg", data))
    assert img.shape == (16, 24, 3) and np.abs(img.astype(int) - pixels).mean() < 4


def test_exif_rotation_is_not_applied(tmp_path):
    pixels = np.zeros((8, 24, 3), np.uint8)
    pixels[:, :8] = 255
    path = write(tmp_path, "r.jpg", with_exif_orientation(encoded(".jpg", pixels), 6))
    assert cv2.imread(path).shape == (24, 8, 3)  # OpenCV's default would rotate
    img = read_image(path)
    assert img.shape == (8, 24, 3) and img[:, :8].mean() > 200 and img[:, 8:].mean() < 50


def test_png_named_jpg_reads_by_content(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    read = read_image_file(write(tmp_path, "x.jpg", encoded(".png", pixels)))
    assert read.facts.kind == "png" and read.problem == ""
    np.testing.assert_array_equal(read.pixels, pixels)


def test_alpha_dropped_and_problems_named(tmp_path):
    img = read_image(write(tmp_path, "a.png", encoded(".png", np.full((4, 5, 4), 9, np.uint8))))
    assert img.shape == (4, 5, 3)
    cut = read_image_file(write(tmp_path, "c.png", encoded(".png", np.zeros((40, 50, 3), np.uint8))[:-12]))
    assert cut.pixels is None and cut.problem.startswith("truncated PNG")
    assert read_image_file(str(tmp_path / "none.png")).problem.startswith("cannot be opened")
    assert read_image_file(write(tmp_path, "z.jpg", b"")).pixels is None
