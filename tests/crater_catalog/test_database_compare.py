"""compare_catalogues.py --raster: a detected catalogue against a crater database in lon/lat, on the body."""
import csv
import json

import numpy as np
import pytest

from tests.crater_catalog.geo_mosaics import crop_geotiff, equirectangular, require_geo
from tests.tools.conftest import load_tool

require_geo()

from yolox.crater_catalog.catalogue_reader import CatalogueError  # noqa: E402
from yolox.crater_catalog.compare import on_the_body  # noqa: E402

HELD_OUT = (384, 384)       # columns of the 768 px mosaic the "detection" ran on


def write_detected(path, lon, lat, diameter_m) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x_px", "y_px", "diameter_px", "score", "fraction", "x_map", "y_map", "diameter_m", "lon",
                         "lat"])
        writer.writerows([0, 0, 0, 0.9, 1, 0, 0, d, x, y] for x, y, d in zip(lon, lat, diameter_m))


@pytest.fixture
def held_out(tmp_path):
    mosaic = equirectangular(tmp_path)
    crop_geotiff(tmp_path / "eqc.tif", tmp_path / "held.tif", *HELD_OUT)
    inside = mosaic.pixels[:, 0] >= HELD_OUT[0]
    return tmp_path, mosaic.craters[inside]


def test_the_database_is_restricted_to_the_raster_and_matches_on_the_body(held_out):
    root, truth = held_out
    lon, lat, diameter_km = truth.T
    # all found but the last; one false crater 2 diameters east of the first
    false_lon = lon[0] + np.degrees(2 * diameter_km[0] / 3396.19 / np.cos(np.radians(lat[0])))
    write_detected(root / "craters.csv", np.append(lon[:-1], false_lon), np.append(lat[:-1], lat[0]),
                   np.append(diameter_km[:-1], diameter_km[0]) * 1000)
    load_tool("compare_catalogues").main([str(root / "craters.csv"), str(root / "eqc.csv"), "--raster",
                                          str(root / "held.tif"), "--json", str(root / "cmp.json")])
    overall = json.loads((root / "cmp.json").read_text())["overall"]
    assert overall["reference"] == len(truth) and overall["detected"] == len(truth)
    assert overall["matched_reference"] == len(truth) - 1


def test_longitudes_0_360_and_map_coordinates_give_the_same_reference(held_out):
    root, truth = held_out
    write_detected(root / "craters.csv", *truth[:, :2].T, truth[:, 2] * 1000)
    with open(root / "eqc.csv", newline="") as handle:
        rows = [[float(v) for v in row.values()] for row in csv.DictReader(handle)]
    with open(root / "east.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["LON_CIRC_IMG", "LAT_CIRC_IMG", "DIAM_CIRC_IMG"]]
                                     + [[lon % 360, lat, d] for lon, lat, d in rows])
    _, base, counts = on_the_body(str(root / "craters.csv"), str(root / "eqc.csv"), str(root / "held.tif"))
    _, east, _ = on_the_body(str(root / "craters.csv"), str(root / "east.csv"), str(root / "held.tif"))
    assert counts["reference craters centred on the raster"] == len(truth) == len(base.x)
    assert np.allclose(base.x, east.x) and np.allclose(base.y, east.y)
    # km on the body: diameters kept, and the distance between two craters is their geodesic distance
    from pyproj import Geod

    assert np.allclose(base.diameter, truth[:, 2])
    far = int(np.argmax(np.hypot(base.x - base.x[0], base.y - base.y[0])))
    _, _, metres = Geod(a=3396190.0, b=3396190.0).inv(truth[0, 0], truth[0, 1], truth[far, 0], truth[far, 1])
    assert np.hypot(base.x[far] - base.x[0], base.y[far] - base.y[0]) == pytest.approx(metres / 1000, rel=1e-4)


def test_a_catalogue_without_lon_lat_is_a_one_line_error(held_out):
    root, _ = held_out
    (root / "plain.csv").write_text("x_px,y_px,diameter_px\n1,2,3\n")
    with pytest.raises(CatalogueError, match=r"plain\.csv has no column\(s\) lon, lat, diameter_m"):
        on_the_body(str(root / "plain.csv"), str(root / "eqc.csv"), str(root / "held.tif"))
