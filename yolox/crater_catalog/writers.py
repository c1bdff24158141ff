"""The catalogue files: craters.csv, craters.geojson (QGIS), overview.png and craters.diam (craterstats).

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

from yolox.crater_catalog.geo import GeoReference
from yolox.crater_catalog.merge import Craters

__all__ = ["Catalogue", "write_csv", "write_geojson", "write_overview", "write_craterstats_diam", "write_all",
           "PIXEL_COLUMNS", "GEO_COLUMNS"]

PIXEL_COLUMNS = ("x_px", "y_px", "diameter_px", "score")
GEO_COLUMNS = ("x_map", "y_map", "diameter_m", "lon", "lat")
CIRCLE_VERTICES = 32
OVERVIEW_SIDE = 2048


@dataclass
class Catalogue:
    """The craters of one image and what is needed to place them on the map."""

    craters: Craters
    width: int
    height: int
    geo: Optional[GeoReference] = None
    metres_per_pixel: Optional[float] = None    # from the georeference, or given for a plain picture
    valid_fraction: float = 1.0                 # share of the image holding data (the counted area)

    def columns(self) -> Dict[str, np.ndarray]:
        """Column name -> values, pixel columns first, map and lon/lat columns when georeferenced."""
        table = dict(zip(PIXEL_COLUMNS, (self.craters.x, self.craters.y, self.craters.diameter, self.craters.score)))
        if self.geo is not None:
            x_map, y_map = self.geo.to_map(self.craters.x, self.craters.y)
            lon, lat = self.geo.to_lonlat(x_map, y_map)
            table.update(x_map=x_map, y_map=y_map, diameter_m=self.craters.diameter * self.metres_per_pixel,
                         lon=lon, lat=lat)
        return table

    def counted_area_px(self) -> float:
        return self.width * self.height * self.valid_fraction


def _atomic(path: str, write: Callable[[str], None]) -> str:
    tmp = f"{path}.partial"
    write(tmp)
    os.replace(tmp, path)
    return path


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
    """craterstats' .diam crater list: counted area (km^2) and diameters (km).

    Without a pixel size the numbers are in pixels and pixels^2 (the file says so); craterstats then plots
    the size-frequency distribution in those units, which is no surface age.
    """
    scale_km = catalogue.metres_per_pixel / 1000.0 if catalogue.metres_per_pixel else None
    unit = "km" if scale_km else "pixels"
    factor = scale_km or 1.0
    area = catalogue.counted_area_px() * factor ** 2
    lines = [f"# Craters detected by yolox.crater_catalog in {source_name}",
             f"# diameters in {unit}" + ("" if scale_km else " (no georeference: pass --pixel-size for km)"),
             f"# area, {unit}^2 (image area holding data)",
             f"area = {area:.6g}",
             "#",
             "crater = {diameter"]
    lines += [f"{d * factor:.6g}" for d in catalogue.craters.diameter]
    lines.append("}")

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write("\n".join(lines) + "\n")

    return _atomic(path, write)


def write_all(catalogue: Catalogue, overview: np.ndarray, factor: float, out_dir: str, source_name: str
              ) -> Dict[str, str]:
    """Every catalogue file into `out_dir`; returns name -> path."""
    os.makedirs(out_dir, exist_ok=True)
    return {
        "csv": write_csv(catalogue, os.path.join(out_dir, "craters.csv")),
        "geojson": write_geojson(catalogue, os.path.join(out_dir, "craters.geojson")),
        "overview": write_overview(catalogue, overview, factor, os.path.join(out_dir, "overview.png")),
        "craterstats": write_craterstats_diam(catalogue, os.path.join(out_dir, "craters.diam"), source_name),
    }
