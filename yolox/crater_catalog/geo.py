"""Pixel to map coordinates (the raster's affine transform) and map to longitude/latitude (its CRS).

Needs rasterio's `affine` and pyproj (the `geo` extra); only rasters that carry a CRS get a GeoReference.
"""
import math
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

__all__ = ["GeoReference"]


@dataclass(frozen=True)
class GeoReference:
    """Affine pixel->map transform (rasterio/GDAL convention: pixel corners) and the map CRS as WKT."""

    transform: Any      # affine.Affine
    crs_wkt: str

    @classmethod
    def from_dataset(cls, dataset) -> "GeoReference":
        return cls(transform=dataset.transform, crs_wkt=dataset.crs.to_wkt())

    def _crs(self):
        from pyproj import CRS

        return CRS.from_wkt(self.crs_wkt)

    def to_map(self, x_px: np.ndarray, y_px: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Map coordinates of pixel positions (x to the right, y down, 0 at the image's top-left corner)."""
        t = self.transform
        x_px, y_px = np.asarray(x_px, np.float64), np.asarray(y_px, np.float64)
        return t.a * x_px + t.b * y_px + t.c, t.d * x_px + t.e * y_px + t.f

    def metres_per_pixel(self) -> float:
        """Side of a (square-equivalent) pixel in metres, from the transform and the CRS's units."""
        t = self.transform
        side = math.sqrt(abs(t.a * t.e - t.b * t.d))
        crs = self._crs()
        if crs.is_geographic:
            # degrees along a meridian: the body's radius sets the length of one degree
            return side * math.pi / 180.0 * crs.ellipsoid.semi_major_metre
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        return side * unit

    def to_lonlat(self, x_map: np.ndarray, y_map: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Longitude and latitude (degrees, on the CRS's own body) of map coordinates."""
        from pyproj import Transformer

        crs = self._crs()
        transformer = Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True)
        lon, lat = transformer.transform(np.asarray(x_map, np.float64), np.asarray(y_map, np.float64))
        return np.asarray(lon), np.asarray(lat)

    def epsg(self):
        """The CRS's EPSG code, or None for CRSs outside EPSG (most planetary ones)."""
        return self._crs().to_epsg()
