"""A detected crater catalogue against a crater database in longitude and latitude, compared on the body.

    detected, reference, counts = on_the_body("out/craters.csv", "robbins_2012.csv", "mosaic.tif")

The database is read like the tile maker reads it (its column names, either longitude convention, or map
coordinates in the raster's CRS) and keeps the craters centred on the raster the catalogue was detected on.
Both catalogues go to kilometres in an azimuthal equidistant plane centred on the raster, on the raster's
body, so distances and diameters compare the same in any projection of the mosaic. Needs rasterio and
pyproj (the geo extra).
"""
import csv
from typing import Dict, Tuple

import numpy as np

from yolox.crater.catalog_tiles import open_georeferenced_raster
from yolox.crater.catalogue_reader import CatalogueError, read_catalogue
from yolox.crater.rim_boxes import centre_pixels, lonlat_of
from yolox.crater_catalog.merge import Craters

__all__ = ["DETECTED_COLUMNS", "on_the_body"]

DETECTED_COLUMNS = ("lon", "lat", "diameter_m")


def _local_plane(crs_wkt: str, lon0: float, lat0: float):
    """lon/lat -> metres, azimuthal equidistant about (lon0, lat0) on the body of `crs_wkt`."""
    from pyproj import CRS, Transformer

    geodetic = CRS.from_wkt(crs_wkt).geodetic_crs
    ellipsoid = geodetic.ellipsoid
    plane = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +a={ellipsoid.semi_major_metre} "
                           f"+b={ellipsoid.semi_minor_metre} +units=m +no_defs")
    return Transformer.from_crs(geodetic, plane, always_xy=True)


def _in_km(plane, lon: np.ndarray, lat: np.ndarray, diameter_m: np.ndarray, score: np.ndarray) -> Craters:
    x, y = plane.transform(lon, lat)
    return Craters(np.asarray(x) / 1000.0, np.asarray(y) / 1000.0, diameter_m / 1000.0, score)


def _read_detected(path: str) -> np.ndarray:
    """[k, 4] lon, lat, diameter_m, score of a craters.csv written for a georeferenced image."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in DETECTED_COLUMNS if name not in (reader.fieldnames or [])]
            if missing:
                raise CatalogueError(f"{path} has no column(s) {', '.join(missing)}: compare on the body needs the "
                                     "craters.csv of a georeferenced image (detect_craters.py on the GeoTIFF)")
            rows = [[float(row[name]) for name in DETECTED_COLUMNS] + [float(row.get("score") or 1.0)]
                    for row in reader]
    except FileNotFoundError:
        raise CatalogueError(f"detected catalogue {path} not found: check the path") from None
    return np.asarray(rows, np.float64).reshape(-1, 4)


def on_the_body(detected_csv: str, database: str, raster: str) -> Tuple[Craters, Craters, Dict[str, int]]:
    """(detected, the database's craters centred on `raster`), both in km on the body, and the counts."""
    with open_georeferenced_raster(raster) as source:
        geo, width, height = source.geo, source.width, source.height
    table = read_catalogue(database)
    lon, lat = lonlat_of(table, geo.crs_wkt)
    cx, cy = centre_pixels(lon, lat, geo.crs_wkt, geo.transform)
    inside = np.isfinite(cx) & np.isfinite(cy) & (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    centre_lon, centre_lat = (float(v[0]) for v in geo.to_lonlat(*geo.to_map(np.array([width / 2]),
                                                                             np.array([height / 2]))))
    plane = _local_plane(geo.crs_wkt, centre_lon, centre_lat)
    reference = _in_km(plane, lon[inside], lat[inside], table.diameter_m[inside], np.ones(int(inside.sum())))
    found = _read_detected(detected_csv)
    detected = _in_km(plane, found[:, 0], found[:, 1], found[:, 2], found[:, 3])
    counts = {"reference craters centred on the raster": int(inside.sum()),
              "reference craters elsewhere (not compared)": int((~inside).sum()),
              "reference rows skipped (empty or out of range)": table.rows_skipped}
    return detected, reference, counts
