"""Kind by magic bytes, header sizes and the truncation tests, on small generated files."""
import cv2
import numpy as np
import pytest

from tests.data.image_files.hand_built import grey_tiff, with_exif_orientation
from yolox.data.image_files import header_size, inspect_bytes, kind_of_content, misnaming

PICTURE = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)


def encoded(ext: str, pixels: np.ndarray = PICTURE, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, pixels, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext, kind", [(".jpg", "jpeg"), (".png", "png"), (".tif", "tiff"), (".bmp", "bmp"),
                                       (".webp", "webp")])
def test_kind_and_size_come_from_the_content(ext, kind):
    facts = inspect_bytes(encoded(ext))
    assert (facts.kind, facts.size, facts.problem) == (kind, (24, 40), "")


def test_big_endian_tiff_and_unknown_content():
    facts = inspect_bytes(grey_tiff(np.zeros((5, 9), np.uint16), big_endian=True))
    assert (facts.kind, facts.size, facts.problem) == ("tiff", (5, 9), "")
    assert kind_of_content(b"GIF89a......") is None and inspect_bytes(b"not an image").kind is None


def test_misnaming_is_named_only_when_name_and_content_disagree():
    assert misnaming("a.jpg", "png") == "PNG files named .jpg"
    assert misnaming("a.JPEG", "jpeg") == "" and misnaming("a.jp2", "png") == "" and misnaming("a.jpg", None) == ""


@pytest.mark.parametrize("make", [
    lambda: encoded(".jpg"),
    lambda: encoded(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),
    lambda: encoded(".jpg") + b"\x00" * 10000,                  # trailing bytes after the end marker
    lambda: with_exif_orientation(encoded(".jpg", PICTURE[:8, :8]), 6, encoded(".jpg", PICTURE[:4, :4])),
    lambda: encoded(".png") + b"trailing",
    lambda: grey_tiff(np.ones((6, 7), np.uint8)),
])
def test_complete_files_pass(make):
    assert inspect_bytes(make()).problem == ""


def test_end_marker_inside_exif_before_the_scan_does_not_hide_truncation():
    jpeg = with_exif_orientation(encoded(".jpg"), 1, thumbnail=encoded(".jpg", PICTURE[:4, :4]))
    assert inspect_bytes(jpeg).problem == "" and inspect_bytes(jpeg[:-300]).problem.startswith("truncated JPEG")


@pytest.mark.parametrize("data, prefix", [
    (encoded(".jpg")[:-200], "truncated JPEG"),
    (encoded(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))[:-200], "truncated JPEG"),
    (encoded(".png")[:-12], "truncated PNG"),
    (encoded(".png")[:200], "truncated PNG"),
    (grey_tiff(np.ones((60, 70), np.uint8))[:-100], "truncated TIFF"),
    (grey_tiff(np.ones((60, 70), np.uint16), big_endian=True)[:-1], "truncated TIFF"),
    (encoded(".tif")[:-300], "truncated TIFF"),  # OpenCV writes the directory after the pixels
])
def test_cut_files_are_named_truncated(data, prefix):
    assert inspect_bytes(data).problem.startswith(prefix)


def test_header_size_reads_a_trailing_tiff_directory(tmp_path):
    path = tmp_path / "big.tif"
    path.write_bytes(encoded(".tif", np.random.default_rng(1).integers(0, 65535, (300, 500), dtype=np.uint16)))
    assert header_size(str(path)) == (300, 500)
