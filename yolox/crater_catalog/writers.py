"""The catalogue files: craters.csv, craters.geojson (QGIS), overview.png, craters.diam (craterstats) and,
for a georeferenced image, craters.scc (CraterTools' spatial crater count, with the area's outline).

Every file is written through a temporary name and renamed, so an interrupted run leaves no half file.
"""
import csv
import json
import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np

from yolox.crater_catalog.footprint import CountingArea
from yolox.crater_catalog.geo import GeoReference
from yolox.crater_catalog.merge import Craters

__all__ = ["Catalogue", "write_csv", "write_geojson", "write_overview", "write_craterstats_diam",
           "write_craterstats_scc", "write_all", "PIXEL_COLUMNS", "GEO_COLUMNS"]

PIXEL_COLUMNS = ("x_px", "y_px", "diameter_px", "score", "fraction")
GEO_COLUMNS = ("x_map", "y_map", "diameter_m", "lon", "lat")
CIRCLE_VERTICES = 32
OVERVIEW_SIDE = 2048


@dataclass
class Catalogue:
    """The craters of one image and what is needed to place them on the map."""

    craters: Craters
    width: int
    height: int
    area: CountingArea                          # the footprint without no-data (craterstats' area)
    geo: Optional[GeoReference] = None
    metres_per_pixel: Optional[float] = None    # scale of a plain picture (georeferenced: per crater, from geo)

    def columns(self) -> Dict[str, np.ndarray]:
        """Column name -> values, pixel columns first, map and lon/lat columns when georeferenced."""
        c = self.craters
        table = dict(zip(PIXEL_COLUMNS, (c.x, c.y, c.diameter, c.score, c.fraction)))
        if self.geo is not None:
            x_map, y_map = self.geo.to_map(self.craters.x, self.craters.y)
            lon, lat = self.geo.to_lonlat(x_map, y_map)
            table.update(zip(GEO_COLUMNS, (x_map, y_map, self.diameters_m(), lon, lat)))
        return table

    def diameters_m(self) -> Optional[np.ndarray]:
        """Diameters in metres: on the body at each crater's own scale when georeferenced, else the pixel
        diameter times the given pixel size; None without either."""
        c = self.craters
        if self.geo is not None:
            return self.geo.diameters_m(c.x, c.y, c.diameter)
        if not self.metres_per_pixel:
            return None
        return c.diameter * self.metres_per_pixel

    def diameters_km(self) -> Optional[np.ndarray]:
        """Diameters in km (see diameters_m), None without georeference or pixel size."""
        metres = self.diameters_m()
        return None if metres is None else metres / 1000.0


def _atomic(path: str, write: Callable[[str], None]) -> str:
    tmp = f"{path}.partial"
    write(tmp)
    os.replace(tmp, path)
    return path


def _write_lines(path: str, lines: List[str]) -> str:
    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    return _atomic(path, write)


def write_csv(catalogue: Catalogue, path: str) -> str:
    table = catalogue.columns()

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.keys())
            for row in zip(*table.values()):
                writer.writerow(f"{float(value):.10g}" for value in row)

    return _atomic(path, write)


def _circle(cx: float, cy: float, radius: float, to_map: Callable) -> List[List[float]]:
    angles = np.linspace(0.0, 2 * math.pi, CIRCLE_VERTICES + 1)
    xs, ys = to_map(cx + radius * np.cos(angles), cy + radius * np.sin(angles))
    ring = np.stack([xs, ys], 1)
    ring[-1] = ring[0]                  # a closed ring repeats its first vertex exactly
    return ring.round(4).tolist()


def write_geojson(catalogue: Catalogue, path: str) -> str:
    """Crater rims as polygons in the raster's map CRS (named in a `crs` member, which QGIS/GDAL read).

    Without georeference the polygons are in pixels with y negated, where QGIS shows an image that has
    no georeference, so the file overlays the picture.
    """
    geo = catalogue.geo
    to_map = geo.to_map if geo is not None else (lambda x, y: (np.asarray(x), -np.asarray(y)))
    table = catalogue.columns()
    names = list(table)
    features = []
    for index, row in enumerate(zip(*table.values())):
        values = dict(zip(names, (round(float(v), 6) for v in row)))
        ring = _circle(values["x_px"], values["y_px"], values["diameter_px"] / 2, to_map)
        features.append({"type": "Feature", "id": index, "properties": values,
                         "geometry": {"type": "Polygon", "coordinates": [ring]}})
    collection = {"type": "FeatureCollection", "name": "craters", "features": features}
    if geo is not None:
        epsg = geo.epsg()
        crs_name = f"urn:ogc:def:crs:EPSG::{epsg}" if epsg else geo.crs_wkt
        collection["crs"] = {"type": "name", "properties": {"name": crs_name}}

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(collection, handle)

    return _atomic(path, write)


def write_overview(catalogue: Catalogue, image: np.ndarray, factor: float, path: str) -> str:
    """`image` (the source reduced by `factor`) with every crater rim drawn."""
    drawn = image.copy()
    craters = catalogue.craters
    thickness = max(1, round(min(drawn.shape[:2]) / 800))
    for x, y, d in zip(craters.x * factor, craters.y * factor, craters.diameter * factor):
        cv2.circle(drawn, (int(round(x)), int(round(y))), max(1, int(round(d / 2))), (0, 230, 255), thickness,
                   lineType=cv2.LINE_AA)

    def write(tmp: str) -> None:
        ok, png = cv2.imencode(".png", drawn)
        if not ok:
            raise RuntimeError(f"could not encode {path} as PNG")
        with open(tmp, "wb") as handle:
            handle.write(png.tobytes())

    return _atomic(path, write)


def write_craterstats_diam(catalogue: Catalogue, path: str, source_name: str) -> str:
    """craterstats' .diam crater list: the counting area (km^2) and per crater its diameter (km) and fraction.

    Without a pixel size the numbers are in pixels and pixels^2 (the file says so); craterstats then plots
    the size-frequency distribution in those units, which is no surface age.
    """
    diameters = catalogue.diameters_km()
    unit = "km" if diameters is not None else "pixels"
    if diameters is None:
        diameters = catalogue.craters.diameter
    lines = [f"# Craters detected by yolox.crater_catalog in {source_name}",
             f"# diameters in {unit}" + ("" if unit == "km" else " (no georeference: pass --pixel-size for km)"),
             f"# area, {unit}^2: the image's footprint holding valid data "
             f"({100 * catalogue.area.valid_share:.2f}% of the image)",
             "# fraction: share of the crater's disc inside that area (below 1 at its edge)",
             f"area = {catalogue.area.area:.10g}",
             "#",
             "crater = {diameter,fraction"]
    lines += [f"{d:.6g} {f:.4f}" for d, f in zip(diameters, catalogue.craters.fraction)]
    lines.append("}")
    return _write_lines(path, lines)


def write_craterstats_scc(catalogue: Catalogue, path: str, source_name: str) -> str:
    """CraterTools' .scc spatial crater count (georeferenced images): the body's radii, the counting area's
    outline in lon/lat (outer rings `ext`, holes `int`), its area, and per crater diameter (km), fraction,
    lon and lat."""
    geo = catalogue.geo
    radii = geo.body_radii_km()
    lines = [f"# Spatial crater count: craters detected by yolox.crater_catalog in {source_name}", "#",
             "# Ellipsoid axes:", f"a_axis_radius = {radii[0]:.6f} <km>", f"b_axis_radius = {radii[0]:.6f} <km>",
             f"c_axis_radius = {radii[1]:.6f} <km>", "#", "# area_shapes:",
             "unit_boundary = {vertex,sub_area,tag,lon,lat"]
    vertex = 0
    for sub_area, (hole, ring) in enumerate(catalogue.area.outlines, start=1):
        lon, lat = geo.to_lonlat(*geo.to_map(ring[:, 0], ring[:, 1]))
        for x, y in zip(lon, lat):
            vertex += 1
            lines.append(f"{vertex}\t{sub_area}\t{'int' if hole else 'ext'}\t{x:.8f}\t{y:.8f}")
    lines += ["}", "#", f"Total_area = {catalogue.area.area:.6f} <km^2>", "#", "# crater_diameters:",
              "crater = {diam,fraction,lon,lat"]
    table = catalogue.columns()
    for d, f, lon, lat in zip(catalogue.diameters_km(), catalogue.craters.fraction, table["lon"], table["lat"]):
        lines.append(f"{d:.6g}\t{f:.4f}\t{lon:.8f}\t{lat:.8f}")
    lines.append("}")
    return _write_lines(path, lines)


def write_all(catalogue: Catalogue, overview: np.ndarray, factor: float, out_dir: str, source_name: str
              ) -> Dict[str, str]:
    """Every catalogue file into `out_dir`; returns name -> path."""
    os.makedirs(out_dir, exist_ok=True)
    files = {
        "csv": write_csv(catalogue, os.path.join(out_dir, "craters.csv")),
        "geojson": write_geojson(catalogue, os.path.join(out_dir, "craters.geojson")),
        "overview": write_overview(catalogue, overview, factor, os.path.join(out_dir, "overview.png")),
        "craterstats": write_craterstats_diam(catalogue, os.path.join(out_dir, "craters.diam"), source_name),
    }
    if catalogue.geo is not None:
        files["cratertools"] = write_craterstats_scc(catalogue, os.path.join(out_dir, "craters.scc"), source_name)
    return files
