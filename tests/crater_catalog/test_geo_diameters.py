"""Crater diameters on the body from pixel boxes: each crater at its own scale, in any projection, so an
equirectangular raster far from the equator and a polar stereographic one give the diameters that were drawn."""
import csv
import math

import numpy as np
import pytest

from tests.crater_catalog.geo_mosaics import equirectangular, polar, rendered_boxes, require_geo

require_geo()

from affine import Affine  # noqa: E402  (rasterio's)
from yolox.crater_catalog.footprint import CountingArea  # noqa: E402
from yolox.crater_catalog.geo import GeoReference  # noqa: E402
from yolox.crater_catalog.merge import Craters  # noqa: E402
from yolox.crater_catalog.writers import Catalogue, write_all  # noqa: E402

R_MARS = 3396190.0
EQC = f"+proj=eqc +R={R_MARS} +units=m +no_defs"
SOUTH_POLAR = f"+proj=stere +lat_0=-90 +lat_ts=-90 +lon_0=0 +k=1 +R={R_MARS} +units=m +no_defs"
DEGREES_PER_100M = math.degrees(100 / R_MARS)
# (CRS, transform, centre longitudes, latitudes): a 100 m/px raster of each kind
PROJECTIONS = {
    "equirectangular": (EQC, Affine.translation(-2e6, 4.5e6) @ Affine.scale(100, -100),
                        np.full(4, -20.0), np.array([0.0, 45.0, 55.0, 60.0])),
    "equirectangular turned 20 degrees": (EQC, Affine.translation(-2e6, 4.5e6) @ Affine.scale(100, -100)
                                          @ Affine.rotation(20), np.full(4, -20.0), np.array([0.0, 45.0, 55.0, 60.0])),
    "lon/lat degrees": ("IAU_2015:49900", Affine.translation(0, 80) @ Affine.scale(DEGREES_PER_100M, -DEGREES_PER_100M),
                        np.full(4, 10.0), np.array([0.0, 45.0, 55.0, 70.0])),
    "south polar stereographic": (SOUTH_POLAR, Affine.translation(-1e6, 1e6) @ Affine.scale(100, -100),
                                  np.array([0.0, 45.0, 200.0, 300.0]), np.array([-89.99, -85.0, -80.0, -70.0])),
}


def geo_reference(crs: str, transform) -> GeoReference:
    from pyproj import CRS

    return GeoReference(transform, CRS.from_user_input(crs).to_wkt())


def mean_box_side(boxes: np.ndarray) -> np.ndarray:
    """The detector's size of a crater: the mean of its box's sides."""
    return ((boxes[:, 2] - boxes[:, 0]) + (boxes[:, 3] - boxes[:, 1])) / 2


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
@pytest.mark.parametrize("diameter_m", [4000.0, 100000.0])
def test_inverse_of_the_tile_makers_rim_boxes(name, diameter_m):
    crs, transform, lon, lat = PROJECTIONS[name]
    geo = geo_reference(crs, transform)
    boxes = geo.rim_boxes(lon, lat, np.full(len(lon), diameter_m))
    x, y = geo.lonlat_to_pixels(lon, lat)
    assert np.allclose(geo.diameters_m(x, y, mean_box_side(boxes)), diameter_m, rtol=2e-3)


def test_equirectangular_scale_is_the_harmonic_mean_of_its_axes():
    # a circle on the sphere spans D / (100 cos lat) px east-west and D / 100 px north-south
    geo = geo_reference(EQC, Affine.translation(0, 4.5e6) @ Affine.scale(100, -100))
    lat = np.array([0.0, 30.0, 45.0, 55.0, 60.0])
    y = (4.5e6 - np.radians(lat) * R_MARS) / 100
    side_px = np.full(len(lat), 50.0)
    expected = side_px * 100 * 2 * np.cos(np.radians(lat)) / (1 + np.cos(np.radians(lat)))
    assert np.allclose(geo.diameters_m(np.full(len(lat), 300.0), y, side_px), expected, rtol=1e-4)


def test_a_rim_off_the_projection_gets_the_nominal_size():
    # a global equirectangular map's top row is the north pole: a crater there reaches past it
    geo = geo_reference(EQC, Affine.translation(0, math.pi / 2 * R_MARS) @ Affine.scale(100, -100))
    diameters = geo.diameters_m(np.array([500.0]), np.array([0.2]), np.array([10.0]))
    assert np.isfinite(diameters).all() and diameters[0] == pytest.approx(1000.0)


def drawn_craters(tif, mosaic):
    """Craters as a perfect detector reports them (centre, mean side of the rendered disc's box) and the
    listed diameters (km) of those found whole in the raster."""
    import rasterio

    with rasterio.open(str(tif)) as dataset:
        image, transform, wkt = dataset.read(1), dataset.transform, dataset.crs.to_wkt()
    boxes = rendered_boxes(image)
    centres = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], 1)
    geo = GeoReference(transform, wkt)
    x, y = geo.lonlat_to_pixels(mosaic.craters[:, 0], mosaic.craters[:, 1])
    nearest = np.argmin(np.hypot(centres[:, None, 0] - x, centres[:, None, 1] - y), axis=1)
    whole = (boxes[:, 0] > 0) & (boxes[:, 1] > 0) & (boxes[:, 2] < image.shape[1]) & (boxes[:, 3] < image.shape[0])
    craters = Craters(centres[whole, 0], centres[whole, 1], mean_box_side(boxes[whole]), np.ones(int(whole.sum())))
    return craters, geo, image.shape, mosaic.craters[nearest[whole], 2]


def read_column(path, name):
    with open(path, newline="") as handle:
        return np.asarray([float(row[name]) for row in csv.DictReader(handle)])


def read_diam(path):
    lines = path.read_text().splitlines()
    start = lines.index("crater = {diameter,fraction") + 1
    return np.asarray([float(line.split()[0]) for line in lines[start:lines.index("}", start)]])


def read_scc(path):
    lines = path.read_text().splitlines()
    start = lines.index("crater = {diam,fraction,lon,lat") + 1
    return np.asarray([float(line.split("\t")[0]) for line in lines[start:lines.index("}", start)]])


@pytest.mark.parametrize("make", [equirectangular, polar], ids=["equirectangular 45 N", "polar"])
def test_catalogue_files_give_the_drawn_diameters(tmp_path, make):
    mosaic = make(tmp_path)
    tif = next(tmp_path.glob("*.tif"))
    craters, geo, shape, truth_km = drawn_craters(tif, mosaic)
    catalogue = Catalogue(craters, shape[1], shape[0], CountingArea(1.0, "km", 1.0, []), geo,
                          geo.metres_per_pixel())
    write_all(catalogue, np.zeros((8, 8, 3), np.uint8), 1.0, str(tmp_path / "out"), tif.name)
    relative = read_column(tmp_path / "out" / "craters.csv", "diameter_m") / 1000 / truth_km - 1
    assert len(relative) > 20
    # the rendered discs are whole pixels, so a disc's box is up to a pixel off its rim
    assert abs(np.median(relative)) < 0.02 and np.all(np.abs(relative) < 0.1)
    for written in (read_diam(tmp_path / "out" / "craters.diam"), read_scc(tmp_path / "out" / "craters.scc")):
        assert np.allclose(written / truth_km - 1, relative, atol=1e-5)


def test_a_picture_without_georeference_keeps_the_given_pixel_size():
    craters = Craters(np.array([10.0, 20.0]), np.array([5.0, 6.0]), np.array([4.0, 8.0]), np.ones(2))
    area = CountingArea(100.0, "pixels", 1.0, [])
    assert np.allclose(Catalogue(craters, 40, 30, area, None, 2.5).diameters_m(), [10.0, 20.0])
    assert Catalogue(craters, 40, 30, area).diameters_km() is None
    assert "diameter_m" not in Catalogue(craters, 40, 30, area, None, 2.5).columns()
