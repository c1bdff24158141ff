"""No-data (the nodata value, a mask band, NaN) is never tiled as terrain, the stretch ignores it, and an
unreadable block skips its chunk only: the catalogue is still written, with the count and the window."""
import json

import numpy as np
import pytest

from tests.crater_catalog.mosaics import MosaicConfig, render_mosaic
from tests.crater_catalog.test_seams import detector
from yolox.crater_catalog.detect import DetectionSettings
from yolox.crater_catalog.pipeline import catalogue_image
from yolox.crater_catalog.sources import open_source

rasterio = pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")

WIDTH, HEIGHT, EDGE = 1200, 900, 400          # no data left of x = EDGE
SETTINGS = DetectionSettings(tile=256, overlap=64, chunk_tiles=2, batch_size=2)
CFG = MosaicConfig(width=WIDTH, height=HEIGHT, seed=6, style="discs", min_radius=5, max_radius=25,
                   craters_per_megapixel=300, max_overlap=1.0, min_gap=4)


def write_raster(path, pixels, nodata=None, mask=None):
    profile = dict(driver="GTiff", width=pixels.shape[1], height=pixels.shape[0], count=1, dtype=pixels.dtype.name,
                   tiled=True, blockxsize=256, blockysize=256, compress="deflate", nodata=nodata)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels[None])
        if mask is not None:
            dst.write_mask(mask.astype(np.uint8) * 255)
    return str(path)


def raster_with_a_hole(tmp_path, kind):
    """The disc mosaic with no data left of EDGE, marked by `kind`."""
    image = render_mosaic(CFG)
    hole = np.zeros(image.shape, bool)
    hole[:, :EDGE] = True
    path = tmp_path / f"{kind}.tif"
    if kind == "value":
        image[hole] = 0
        return write_raster(path, image, nodata=0)
    if kind == "mask":
        return write_raster(path, image, mask=~hole)
    values = image.astype(np.float32) * 10 + 1000           # 1600 (discs) .. 2700 (background)
    values[hole] = np.nan if kind == "nan" else -9999
    return write_raster(path, values, nodata=None if kind == "nan" else -9999)


@pytest.mark.parametrize("kind", ["value", "mask", "nan", "float_value"])
def test_no_data_is_skipped_counted_and_left_out_of_the_area(tmp_path, kind):
    path = raster_with_a_hole(tmp_path, kind)
    figures = catalogue_image(path, detector(), SETTINGS, str(tmp_path / "out"))
    tiles_in_hole = 4          # the first column of tiles (x 0..256) lies wholly in the hole, 4 rows of them
    assert figures["tiles_nodata"] >= tiles_in_hole
    assert figures["tiles_run"] + figures["tiles_nodata"] == figures["tiles"]
    assert figures["valid_share"] == pytest.approx(1 - EDGE / WIDTH, abs=2e-3)
    assert figures["counting_area"] == pytest.approx(figures["valid_share"] * WIDTH * HEIGHT)
    rows = np.genfromtxt(tmp_path / "out" / "craters.csv", delimiter=",", names=True)
    assert len(rows) > 50 and rows["x_px"].min() > EDGE - 25       # none in the hole (discs reach 25 px)
    r = rows["diameter_px"] / 2
    whole = ((rows["x_px"] - r > EDGE + 2) & (rows["x_px"] + r < WIDTH - 2) & (rows["y_px"] - r > 2)
             & (rows["y_px"] + r < HEIGHT - 2))
    cut = rows["x_px"] < EDGE                   # centre in the hole: less than half the disc holds data
    assert (rows["fraction"][whole] == 1).all() and ((rows["fraction"][cut] > 0) & (rows["fraction"][cut] < 0.5)).all()


def test_stretch_ignores_no_data(tmp_path):
    for kind in ("nan", "float_value"):
        with open_source(raster_with_a_hole(tmp_path, kind)) as source:
            assert 1590 <= source.scale.low <= 1700 and 2600 <= source.scale.high <= 2710, kind
            bgr, valid = source.read_tile(0, 0, 600, 300)
            assert (bgr[:, :EDGE] == bgr[0, 0]).all() and not valid[:, :EDGE].any() and valid[:, EDGE:].all()


def corrupt_block(path, column, row):
    """Overwrite the middle of one compressed block of a tiled GeoTIFF with zeros (no longer valid deflate)."""
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item(f"BLOCK_OFFSET_{column}_{row}", "TIFF", bidx=1))
        size = int(dataset.get_tag_item(f"BLOCK_SIZE_{column}_{row}", "TIFF", bidx=1))
    data = bytearray(open(path, "rb").read())
    data[offset + 8:offset + size - 8] = bytes(size - 16)
    open(path, "wb").write(bytes(data))


def test_an_unreadable_block_skips_its_chunk_and_the_catalogue_is_still_written(tmp_path):
    path = write_raster(tmp_path / "corrupt.tif", render_mosaic(CFG))
    corrupt_block(path, 2, 1)        # pixels x 512..768, y 256..512
    with rasterio.open(path) as dataset, pytest.raises(rasterio.errors.RasterioIOError):
        dataset.read(1, window=((256, 512), (512, 768)))
    figures = catalogue_image(path, detector(), SETTINGS, str(tmp_path / "out"))
    assert figures["chunks_failed"] >= 1
    for record in figures["failed_chunks"]:
        window = record["window"]
        assert window["x0"] < 768 and window["x0"] + window["width"] > 512 and record["error"]
        assert window["y0"] < 512 and window["y0"] + window["height"] > 256
    assert json.loads((tmp_path / "out" / "run.json").read_text())["chunks_failed"] == figures["chunks_failed"]
    assert (tmp_path / "out" / "craters.csv").exists() and figures["craters"] > 100
    assert figures["valid_share"] < 1 - 256 * 256 / (WIDTH * HEIGHT)
    assert "area" in (tmp_path / "out" / "craters.diam").read_text()
