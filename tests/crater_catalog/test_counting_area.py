"""The counting area on the body and the per-crater fraction, in the .diam and .scc grammar craterstats reads.

craterstats (the optional extra) reads the files when it is importable; it needs numpy < 2, so the files are
also parsed here by the grammar of its reader (gm.read_textstructure): `#` comments, `key = value`, and
tables `key = {col,col` newline, whitespace-separated rows, `}`.
"""
import math
import re

import numpy as np
import pytest

from tests.crater_catalog.runs import R_MARS, write_disc_geotiff
from tests.crater_catalog.test_seams import detector
from yolox.crater_catalog.detect import DetectionSettings
from yolox.crater_catalog.footprint import counting_area, disc_fraction
from yolox.crater_catalog.pipeline import catalogue_image
from yolox.crater_catalog.sources import open_source
from yolox.crater_catalog.tiling import Tile

pytest.importorskip("rasterio", reason="the geo extra (pip install -e '.[geo]') is not installed")
pytest.importorskip("pyproj", reason="the geo extra (pip install -e '.[geo]') is not installed")

WIDTH, HEIGHT, PIXEL_M, TOP_M = 600, 500, 100.0, 200_000.0   # runs.write_disc_geotiff's placement


def sphere_band_area_km2(width_px, top_m, bottom_m):
    """Area of an equirectangular (lat_ts 0) rectangle on a sphere: R^2 dlon (sin lat1 - sin lat2)."""
    r_km = R_MARS / 1000
    dlon = width_px * PIXEL_M / R_MARS
    return r_km ** 2 * dlon * (math.sin(top_m / R_MARS) - math.sin(bottom_m / R_MARS))


def read_textstructure(text):
    """craterstats' text-structure grammar: {key: value} and {key: {column: [values]}} for tables."""
    lines = [line.split("#", 1)[0].rstrip() for line in text.splitlines()]
    found, table = {}, None
    for line in filter(None, lines):
        if table is not None:
            if line.strip() == "}":
                table = None
                continue
            for column, value in zip(table, line.split()):
                table[column].append(value)
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith("{"):
            table = found[key] = {column.strip(): [] for column in value[1:].split(",")}
        else:
            found[key] = value
    return found


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("area")
    write_disc_geotiff(root / "discs.tif", WIDTH, HEIGHT, seed=5)
    figures = catalogue_image(str(root / "discs.tif"), detector(), DetectionSettings(tile=256, overlap=64),
                              str(root / "out"))
    rows = np.genfromtxt(root / "out" / "craters.csv", delimiter=",", names=True)
    return root, figures, rows


def test_area_is_measured_on_the_body(catalogue):
    root, _, _ = catalogue
    expected = sphere_band_area_km2(WIDTH, TOP_M, TOP_M - HEIGHT * PIXEL_M)
    with open_source(str(root / "discs.tif")) as source:
        area = counting_area(source, source.geo.metres_per_pixel())
        assert area.unit == "km" and area.area == pytest.approx(expected, rel=1e-5)
        half = counting_area(source, None, excluded=[(0, 0, WIDTH // 2, HEIGHT)])
        assert half.area == pytest.approx(expected / 2, rel=1e-3)


def test_diam_file_grammar(catalogue):
    root, figures, rows = catalogue
    parsed = read_textstructure((root / "out" / "craters.diam").read_text())
    assert float(parsed["area"]) == pytest.approx(figures["counting_area"], rel=1e-5)
    craters = parsed["crater"]
    assert set(craters) == {"diameter", "fraction"} and len(craters["diameter"]) == len(rows) > 10
    np.testing.assert_allclose(np.float64(craters["diameter"]), rows["diameter_m"] / 1000, rtol=1e-5)
    fraction = np.float64(craters["fraction"])
    assert ((fraction > 0) & (fraction <= 1)).all() and (fraction < 1).any()   # discs cut by the image border


def test_scc_file_grammar(catalogue):
    root, figures, rows = catalogue
    parsed = read_textstructure((root / "out" / "craters.scc").read_text())
    assert float(re.match(r"\s*[\d.]+", parsed["Total_area"]).group()) == pytest.approx(figures["counting_area"],
                                                                                        rel=1e-5)
    assert float(parsed["a_axis_radius"].split()[0]) == pytest.approx(R_MARS / 1000)
    boundary = parsed["unit_boundary"]
    lon, lat = np.float64(boundary["lon"]), np.float64(boundary["lat"])
    assert set(boundary["tag"]) == {"ext"} and (lon[0], lat[0]) == (lon[-1], lat[-1])
    east = math.degrees(WIDTH * PIXEL_M / R_MARS)
    assert lon.min() == pytest.approx(0, abs=0.01) and lon.max() == pytest.approx(east, abs=0.01)
    craters = parsed["crater"]
    np.testing.assert_allclose(np.float64(craters["lat"]), rows["lat"], atol=1e-7)
    assert len(craters["diam"]) == len(rows)


@pytest.mark.parametrize("suffix", ["diam", "scc"])
def test_craterstats_reads_the_files(catalogue, suffix):
    craterstats = pytest.importorskip("craterstats", reason="craterstats (optional extra, needs numpy<2) is not "
                                      "installed; the grammar tests above check the files")
    root, figures, rows = catalogue
    count = craterstats.Cratercount(str(root / "out" / f"craters.{suffix}"))
    assert count.area == pytest.approx(figures["counting_area"], rel=1e-5) and len(count.diam) == len(rows)


def test_disc_fraction_at_image_border_and_inner_edge():
    tile = Tile(x0=0, y0=0, width=100, height=100, out_width=100, out_height=100, scale=1.0, inner_left=False,
                inner_top=False, inner_right=True, inner_bottom=False)
    cx, cy, r = np.array([0.0, 100.0, 50.0]), np.array([50.0, 50.0, 50.0]), np.array([10.0, 10.0, 10.0])
    valid = np.ones((100, 100), bool)
    valid[:, 45:] = False
    fractions = disc_fraction(cx, cy, r, tile, None)
    assert fractions[0] == pytest.approx(0.5, abs=0.03) and fractions[1] == 1 and fractions[2] == 1
    # valid left of x = 45: the disc's segment beyond half a radius from its centre, (acos h - h sqrt(1-h^2)) / pi
    segment = (math.acos(0.5) - 0.5 * math.sqrt(0.75)) / math.pi
    assert disc_fraction(cx[2:], cy[2:], r[2:], tile, valid)[0] == pytest.approx(segment, abs=0.02)
