"""Projected rims: the boxes follow each projection's distortion; unprojectable rims are nan."""
import math

import numpy as np
import pytest

from tests.crater_catalog.geo_mosaics import require_geo

require_geo()

from yolox.crater_catalog.catalogue_reader import LONLAT, MAP, CraterTable  # noqa: E402
from yolox.crater_catalog.geo import GeoReference  # noqa: E402

R_MARS = 3396190.0
DEGREE_PER_100M = math.degrees(100 / R_MARS)


def georeference(crs_wkt: str, x0: float, y0: float, size: float) -> GeoReference:
    """A north-up raster of `size` map units per pixel, its top-left corner at (x0, y0)."""
    from rasterio.transform import from_origin

    return GeoReference(from_origin(x0, y0, size, size), crs_wkt)


def table(a, b, place: str) -> CraterTable:
    ones = np.ones(len(a))
    return CraterTable(np.asarray(a), np.asarray(b), 1000.0 * ones, ones, place, ("a", "b", "c"), len(a), 0)


@pytest.mark.parametrize("crs", ["+proj=longlat +R=3396190 +no_defs", "IAU_2015:49900"])
def test_lonlat_raster_gives_craters_wider_by_one_over_cos_lat(crs):
    from pyproj import CRS

    wkt = CRS.from_user_input(crs).to_wkt()
    lat = np.array([0.0, 49.5, 70.0])
    boxes = georeference(wkt, 0.0, 80.0, DEGREE_PER_100M).rim_boxes(np.full(3, 10.0), lat, np.full(3, 4000.0))
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert np.allclose(height, 40.0, rtol=1e-3)
    assert np.allclose(width, 40.0 / np.cos(np.radians(lat)), rtol=2e-3)


def test_polar_stereographic_boxes_are_square_and_scaled_by_k():
    from pyproj import CRS

    wkt = CRS.from_string(f"+proj=stere +lat_0=-90 +lat_ts=-90 +lon_0=0 +k=1 +R={R_MARS} +units=m +no_defs").to_wkt()
    lat = np.array([-89.0, -80.0, -70.0])
    boxes = georeference(wkt, -1e6, 1e6, 100.0).rim_boxes(np.array([0.0, 45.0, 200.0]), lat, np.full(3, 10000.0))
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    k = 2.0 / (1.0 + np.sin(np.radians(-lat)))       # the projection's scale factor at that latitude
    assert np.allclose(np.maximum(width, height), 100.0 * k, rtol=0.02)
    assert np.allclose(np.minimum(width, height), 100.0 * k, rtol=0.05)


def test_map_coordinates_and_longitude_conventions():
    from pyproj import CRS

    wkt = CRS.from_string(f"+proj=eqc +R={R_MARS} +units=m +no_defs").to_wkt()
    geo = georeference(wkt, 0.0, 0.0, 100.0)
    lon, lat = table([350.0, -10.0], [5.0, 5.0], LONLAT).lonlat(geo)
    assert np.allclose(lon, -10.0) and np.allclose(lat, 5.0)
    lon, lat = table([np.radians(-10.0) * R_MARS], [np.radians(5.0) * R_MARS], MAP).lonlat(geo)
    assert lon[0] == pytest.approx(-10.0) and lat[0] == pytest.approx(5.0)


def test_rims_outside_the_projection_are_nan():
    from pyproj import CRS

    wkt = CRS.from_string(f"+proj=ortho +lat_0=0 +lon_0=0 +R={R_MARS} +units=m +no_defs").to_wkt()
    boxes = georeference(wkt, -1e6, 1e6, 100.0).rim_boxes(np.array([0.0, 180.0]), np.zeros(2), np.full(2, 5000.0))
    assert np.isfinite(boxes[0]).all() and np.isnan(boxes[1]).all()
