"""Crater rims on the body, projected into a raster: the pixel box of each crater as the image shows it.

The rim is the circle of points at geodesic distance D/2 from the centre, on the ellipsoid of the
raster's own body (its CRS's geodetic CRS); each of its points is projected into the raster's CRS and
through the inverse of the raster's transform, and the box is the extent of the projected points. So an
equirectangular mosaic far from the equator (craters wider than tall) and a polar stereographic one
get the boxes their pixels show. Needs pyproj (the geo extra).
"""
from typing import Tuple

import numpy as np

from yolox.crater.catalogue_reader import CraterTable

__all__ = ["RIM_POINTS", "lonlat_of", "rim_boxes", "centre_pixels"]

RIM_POINTS = 64


def _crs_pair(crs_wkt: str):
    """(the raster's CRS, its body's geographic CRS), imported lazily to keep pyproj an optional extra."""
    from pyproj import CRS

    crs = CRS.from_wkt(crs_wkt)
    return crs, crs.geodetic_crs


def _to_pixels(transform, x_map: np.ndarray, y_map: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Map coordinates -> pixel coordinates (x right, y down, 0 at the raster's top-left corner)."""
    inverse = ~transform
    return (inverse.a * x_map + inverse.b * y_map + inverse.c,
            inverse.d * x_map + inverse.e * y_map + inverse.f)


def lonlat_of(table: CraterTable, crs_wkt: str) -> Tuple[np.ndarray, np.ndarray]:
    """Longitudes (-180..180) and latitudes of the table's centres; map coordinates go through the CRS."""
    from pyproj import Transformer

    if table.geographic:
        return (table.a + 180.0) % 360.0 - 180.0, table.b.copy()
    crs, geodetic = _crs_pair(crs_wkt)
    lon, lat = Transformer.from_crs(crs, geodetic, always_xy=True).transform(table.a, table.b)
    return np.asarray(lon, np.float64), np.asarray(lat, np.float64)


def centre_pixels(lon: np.ndarray, lat: np.ndarray, crs_wkt: str, transform) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates of centres given in lon/lat (inf or nan where the projection has no image)."""
    from pyproj import Transformer

    crs, geodetic = _crs_pair(crs_wkt)
    x_map, y_map = Transformer.from_crs(geodetic, crs, always_xy=True).transform(lon, lat, errcheck=False)
    return _to_pixels(transform, np.asarray(x_map, np.float64), np.asarray(y_map, np.float64))


def rim_boxes(lon: np.ndarray, lat: np.ndarray, diameter_m: np.ndarray, crs_wkt: str, transform,
              points: int = RIM_POINTS) -> np.ndarray:
    """[N, 4] pixel boxes (x0, y0, x1, y1) of the projected rims; rows of nan where a rim does not project."""
    from pyproj import Transformer

    crs, geodetic = _crs_pair(crs_wkt)
    count = len(lon)
    if count == 0:
        return np.zeros((0, 4))
    azimuths = np.linspace(0.0, 360.0, points, endpoint=False)
    rim_lon, rim_lat, _ = geodetic.get_geod().fwd(
        np.repeat(lon, points), np.repeat(lat, points), np.tile(azimuths, count), np.repeat(diameter_m / 2, points))
    x_map, y_map = Transformer.from_crs(geodetic, crs, always_xy=True).transform(
        np.asarray(rim_lon), np.asarray(rim_lat), errcheck=False)
    x_px, y_px = _to_pixels(transform, np.asarray(x_map, np.float64), np.asarray(y_map, np.float64))
    x_px, y_px = x_px.reshape(count, points), y_px.reshape(count, points)
    boxes = np.stack([x_px.min(1), y_px.min(1), x_px.max(1), y_px.max(1)], axis=1)
    boxes[~np.isfinite(boxes).all(axis=1)] = np.nan
    return boxes
