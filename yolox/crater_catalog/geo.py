"""A raster's projection, both ways: pixels to map coordinates (its affine transform) to longitude/latitude (its
CRS) and back, crater rims on the body as pixel boxes, diameters and areas on the body, a local plane in metres.

The rim of a crater is the circle of points at geodesic distance D/2 from its centre on the ellipsoid of the
raster's own body; each point is projected into the raster's CRS and through the inverse transform, and the
box is the extent of the projected points. So an equirectangular mosaic far from the equator (craters wider
than tall) and a polar stereographic one get the boxes their pixels show.
Needs rasterio's `affine` and pyproj (the `geo` extra); only rasters that carry a CRS get a GeoReference.
"""
import math
from dataclasses import dataclass
from typing import Any, Tuple

import numpy as np

__all__ = ["GeoReference", "RIM_POINTS"]

RIM_POINTS = 64


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

    def to_pixels(self, x_map: np.ndarray, y_map: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel positions of map coordinates (the inverse of to_map)."""
        inverse = ~self.transform
        x_map, y_map = np.asarray(x_map, np.float64), np.asarray(y_map, np.float64)
        return inverse.a * x_map + inverse.b * y_map + inverse.c, inverse.d * x_map + inverse.e * y_map + inverse.f

    def lonlat_to_pixels(self, lon: np.ndarray, lat: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel positions of longitudes and latitudes (inf or nan where the projection has no image)."""
        x_map, y_map = self._from_lonlat().transform(lon, lat, errcheck=False)
        return self.to_pixels(x_map, y_map)

    def rim_boxes(self, lon: np.ndarray, lat: np.ndarray, diameter_m: np.ndarray,
                  points: int = RIM_POINTS) -> np.ndarray:
        """[N, 4] pixel boxes (x0, y0, x1, y1) of the projected rims; rows of nan where a rim does not project."""
        count = len(lon)
        if count == 0:
            return np.zeros((0, 4))
        azimuths = np.linspace(0.0, 360.0, points, endpoint=False)
        rim_lon, rim_lat, _ = self._crs().geodetic_crs.get_geod().fwd(
            np.repeat(lon, points), np.repeat(lat, points), np.tile(azimuths, count), np.repeat(diameter_m / 2, points))
        x_map, y_map = self._from_lonlat().transform(np.asarray(rim_lon), np.asarray(rim_lat), errcheck=False)
        x_px, y_px = self.to_pixels(x_map, y_map)
        x_px, y_px = x_px.reshape(count, points), y_px.reshape(count, points)
        boxes = np.stack([x_px.min(1), y_px.min(1), x_px.max(1), y_px.max(1)], axis=1)
        boxes[~np.isfinite(boxes).all(axis=1)] = np.nan
        return boxes

    def local_plane(self, lon0: float, lat0: float):
        """A pyproj Transformer lon/lat -> metres, azimuthal equidistant about (lon0, lat0) on the CRS's body."""
        from pyproj import CRS, Transformer

        geodetic = self._crs().geodetic_crs
        ellipsoid = geodetic.ellipsoid
        plane = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +a={ellipsoid.semi_major_metre} "
                               f"+b={ellipsoid.semi_minor_metre} +units=m +no_defs")
        return Transformer.from_crs(geodetic, plane, always_xy=True)

    def _from_lonlat(self):
        """The pyproj Transformer lon/lat (the CRS's own body) -> map coordinates."""
        from pyproj import Transformer

        crs = self._crs()
        return Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)

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

    def diameters_m(self, x_px: np.ndarray, y_px: np.ndarray, diameter_px: np.ndarray) -> np.ndarray:
        """Diameter on the body (metres, geodesic on the CRS's ellipsoid) of craters whose pixel boxes have
        these centres and mean side `diameter_px` (the detector's size); see `_box_side_per_metre`.

        The local scale is measured across each crater: its centre and the points one radius away along
        x and y go to lon/lat, and each probe's geodesic distance and azimuth from the centre give its east
        and north offset on the body. Where a probe leaves the projection (a rim over a pole of a global
        map) the nominal pixel size stands in.
        """
        x_px, y_px = np.asarray(x_px, np.float64), np.asarray(y_px, np.float64)
        diameter_px = np.asarray(diameter_px, np.float64)
        step = np.maximum(diameter_px / 2, 0.5)
        along_x, along_y = np.array([1.0, -1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, -1.0])
        xs = np.concatenate([x_px[None], x_px + along_x[:, None] * step])
        ys = np.concatenate([y_px[None], y_px + along_y[:, None] * step])
        lon, lat = self.to_lonlat(*self.to_map(xs, ys))
        count = len(x_px)
        azimuth, _, distance = self._crs().get_geod().inv(
            np.tile(lon[0], 4), np.tile(lat[0], 4), lon[1:].ravel(), lat[1:].ravel())
        azimuth, distance = (np.radians(np.asarray(azimuth)).reshape(4, count),
                             np.asarray(distance).reshape(4, count))
        east, north = distance * np.sin(azimuth), distance * np.cos(azimuth)
        # metres east and north per pixel along x and y (central differences over the crater's diameter)
        jacobian = np.stack([[east[0] - east[1], east[2] - east[3]],
                             [north[0] - north[1], north[2] - north[3]]]) / (2 * step)
        diameter = diameter_px / _box_side_per_metre(jacobian)
        return np.where(np.isfinite(diameter) & (diameter > 0), diameter, diameter_px * self.metres_per_pixel())

    def cell_areas_km2(self, x_edges_px: np.ndarray, y_edges_px: np.ndarray) -> np.ndarray:
        """Area on the body (km^2, geodesic on the CRS's ellipsoid) of each cell of the pixel grid with these
        column and row edges: [len(y_edges) - 1, len(x_edges) - 1]."""
        xs, ys = np.meshgrid(np.asarray(x_edges_px, np.float64), np.asarray(y_edges_px, np.float64))
        lon, lat = self.to_lonlat(*self.to_map(xs, ys))
        geod = self._crs().get_geod()
        areas = np.zeros((len(y_edges_px) - 1, len(x_edges_px) - 1))
        for row in range(areas.shape[0]):
            for col in range(areas.shape[1]):
                corners = [(row, col), (row, col + 1), (row + 1, col + 1), (row + 1, col)]
                area, _ = geod.polygon_area_perimeter([lon[c] for c in corners], [lat[c] for c in corners])
                areas[row, col] = abs(area) / 1e6
        return areas

    def body_radii_km(self) -> Tuple[float, float]:
        """(equatorial, polar) radius of the CRS's body in km."""
        ellipsoid = self._crs().ellipsoid
        return ellipsoid.semi_major_metre / 1000.0, ellipsoid.semi_minor_metre / 1000.0

    def epsg(self):
        """The CRS's EPSG code, or None for CRSs outside EPSG (most planetary ones)."""
        return self._crs().to_epsg()


def _box_side_per_metre(jacobian: np.ndarray) -> np.ndarray:
    """Mean side in pixels of the box of a circle 1 m across on the body, for [2, 2, n] local scales
    (rows east, north; columns per pixel along x, along y).

    The circle shows as the ellipse J^-1 g, |g| = 1/2; its box spans |row of J^-1| along each pixel axis,
    so the mean side is half the sum of those row norms. The detector's size is that mean side, which
    makes this the exact inverse of the tile maker's projected rim boxes for a locally affine projection.
    """
    (a, b), (c, d) = jacobian
    det = np.abs(a * d - b * c)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.hypot(d, b) + np.hypot(c, a)) / (2 * det)
