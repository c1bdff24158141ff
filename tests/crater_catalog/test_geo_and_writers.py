"""A GeoTIFF with a known transform and CRS: map coordinates, lon/lat, diameter in metres, the files."""
import csv
import json
import math

import numpy as np
import pytest

from tests.crater_catalog.test_seams import detector
from yolox.crater_catalog.pipeline import catalogue_image
from yolox.crater_catalog.detect import DetectionSettings
from tests.crater_catalog.mosaics import MosaicConfig, write_mosaic

rasterio = pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")
pytest.importorskip("pyproj", reason="the geo extra (pip install -e '.[geo]') is not installed")

R_MARS = 3396190.0
X0, Y0, PIXEL = 1_000_000.0, 500_000.0, 100.0


@pytest.fixture(scope="module")
def catalogue_dir(tmp_path_factory):
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    root = tmp_path_factory.mktemp("geo")
    cfg = MosaicConfig(width=600, height=500, seed=5, style="discs", min_radius=5, max_radius=25,
                       craters_per_megapixel=200, max_overlap=1.0, min_gap=4, block=256)
    crs = CRS.from_string(f"+proj=eqc +lat_ts=0 +lat_0=0 +lon_0=0 +x_0=0 +y_0=0 +R={R_MARS} +units=m +no_defs")
    craters = write_mosaic(str(root / "discs.tif"), cfg, transform=from_origin(X0, Y0, PIXEL, PIXEL), crs=crs,
                           progress=False)
    figures = catalogue_image(str(root / "discs.tif"), detector(), DetectionSettings(tile=256, overlap=64),
                              str(root / "out"))
    return root / "out", craters, figures


def read_rows(path):
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_map_and_lonlat_columns(catalogue_dir):
    out, craters, figures = catalogue_dir
    rows = read_rows(out / "craters.csv")
    assert figures["georeferenced"] and len(rows) >= 0.9 * len(craters)
    for row in rows:
        assert row["x_map"] == pytest.approx(X0 + row["x_px"] * PIXEL)
        assert row["y_map"] == pytest.approx(Y0 - row["y_px"] * PIXEL)
        # a circle D across on the sphere is D / (PIXEL cos lat) px wide and D / PIXEL px tall, so its box's
        # mean side times the harmonic mean of the two pixel sizes gives D
        cos_lat = math.cos(math.radians(row["lat"]))
        assert row["diameter_m"] == pytest.approx(row["diameter_px"] * PIXEL * 2 * cos_lat / (1 + cos_lat), rel=1e-4)
        # equirectangular on a sphere: lon = x / R, lat = y / R (radians)
        assert row["lon"] == pytest.approx(math.degrees(row["x_map"] / R_MARS), abs=1e-7)
        assert row["lat"] == pytest.approx(math.degrees(row["y_map"] / R_MARS), abs=1e-7)


def test_geojson_polygons_in_map_units(catalogue_dir):
    out, _, _ = catalogue_dir
    collection = json.loads((out / "craters.geojson").read_text())
    assert "crs" in collection and collection["features"]
    feature = collection["features"][0]
    ring = np.asarray(feature["geometry"]["coordinates"][0])
    props = feature["properties"]
    radii = np.hypot(ring[:, 0] - props["x_map"], ring[:, 1] - props["y_map"])
    np.testing.assert_allclose(radii, props["diameter_px"] * PIXEL / 2, rtol=1e-6)   # the pixel circle, in metres
    assert (ring[0] == ring[-1]).all()


def test_craterstats_reads_the_diam_file(catalogue_dir):
    craterstats = pytest.importorskip("craterstats", reason="craterstats is not installed")
    out, _, _ = catalogue_dir
    count = craterstats.Cratercount(str(out / "craters.diam"))
    rows = read_rows(out / "craters.csv")
    # the area on the sphere: R^2 dlon (sin lat_top - sin lat_bottom) of the equirectangular rectangle
    dlon = 600 * PIXEL / R_MARS
    area = (R_MARS / 1000) ** 2 * dlon * (math.sin(Y0 / R_MARS) - math.sin((Y0 - 500 * PIXEL) / R_MARS))
    assert count.area == pytest.approx(area, rel=1e-5)
    assert len(count.diam) == len(rows)
    assert max(count.diam) == pytest.approx(max(r["diameter_m"] for r in rows) / 1000, rel=1e-5)


def test_overview_and_run_figures(catalogue_dir):
    import cv2

    out, _, figures = catalogue_dir
    overview = cv2.imread(str(out / "overview.png"))
    assert overview.shape[:2] == (500, 600)
    assert figures["tiles"] == 9 and figures["peak_rss_mib"] > 0
