"""The counting area: where the image holds valid data, its size on the body, and each crater's share of it.

The footprint is the image minus its no-data (nodata value, mask, NaN) and minus the chunks that could not
be read. Its area is measured on a reduced nearest-neighbour read of the validity (AREA_SIDE pixels on the
longest side), cell by cell of a coarse grid whose cells get their true area on the body from the CRS's
ellipsoid (so a lon/lat or equirectangular raster away from the equator is measured right). A crater's
fraction (craterstats' `fraction` column) is the share of its disc that lies in the footprint, sampled on
DISC_SAMPLES points: 1 inside, less for a crater cut by the footprint's edge.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from yolox.crater_catalog.sources import ImageSource
from yolox.crater_catalog.tiling import Tile

__all__ = ["CountingArea", "counting_area", "disc_fraction", "AREA_SIDE"]

AREA_SIDE = 4096       # reduced validity grid: about 0.02 % of the side per cell
AREA_CELLS = 64        # coarse cells per side whose area on the body is computed
DISC_GRID = 16         # sample points per diameter of the fraction's disc
Window = Tuple[int, int, int, int]


def _unit_disc(points_per_diameter: int) -> np.ndarray:
    centres = (np.arange(points_per_diameter) + 0.5) / points_per_diameter * 2 - 1
    xs, ys = np.meshgrid(centres, centres)
    inside = xs ** 2 + ys ** 2 <= 1
    return np.stack([xs[inside], ys[inside]], 1)


UNIT_DISC = _unit_disc(DISC_GRID)


def disc_fraction(cx: np.ndarray, cy: np.ndarray, radius: np.ndarray, tile: Tile,
                  valid: Optional[np.ndarray]) -> np.ndarray:
    """Share of each disc (tile model pixels) on valid data: beyond the image's border is outside, beyond an
    inner tile edge counts as data (the neighbouring tile holds it)."""
    px = cx[:, None] + radius[:, None] * UNIT_DISC[None, :, 0]
    py = cy[:, None] + radius[:, None] * UNIT_DISC[None, :, 1]
    w, h = tile.out_width, tile.out_height
    outside = np.zeros(px.shape, bool)
    for inner, beyond in ((tile.inner_left, px < 0), (tile.inner_right, px >= w), (tile.inner_top, py < 0),
                          (tile.inner_bottom, py >= h)):
        if not inner:
            outside |= beyond
    ok = ~outside
    if valid is not None:
        in_tile = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        xi = np.clip(px.astype(np.int64), 0, w - 1)
        yi = np.clip(py.astype(np.int64), 0, h - 1)
        ok &= ~in_tile | valid[yi, xi]
    return ok.mean(1) if len(cx) else np.zeros(0)


@dataclass
class CountingArea:
    """The counting area: its size in `unit`^2, the share of the image it covers, its outline in pixels."""

    area: float
    unit: str                                   # "km" or "pixels"
    valid_share: float
    outlines: List[Tuple[bool, np.ndarray]]     # (is_hole, closed ring [k, 2] in full-resolution pixels)


def _edges(length: int, cells: int) -> np.ndarray:
    return np.unique(np.linspace(0, length, min(cells, length) + 1).round().astype(int))


def _outlines(valid: np.ndarray, factor_x: float, factor_y: float) -> List[Tuple[bool, np.ndarray]]:
    """The valid region's boundaries (outer rings and holes) in full-resolution pixels, simplified to a pixel."""
    contours, hierarchy = cv2.findContours(valid.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings = []
    for contour, links in zip(contours, hierarchy[0] if hierarchy is not None else []):
        points = cv2.approxPolyDP(contour, 1.0, True)[:, 0].astype(np.float64)
        if len(points) < 3:
            continue
        points = np.vstack([points, points[:1]])
        rings.append((bool(links[3] >= 0), np.stack([(points[:, 0] + 0.5) * factor_x,
                                                     (points[:, 1] + 0.5) * factor_y], 1)))
    return rings


def counting_area(source: ImageSource, metres_per_pixel: Optional[float], excluded: Sequence[Window] = ()
                  ) -> CountingArea:
    """The footprint of `source` without no-data and without the `excluded` windows (chunks not read)."""
    reduced = source.read_reduced(AREA_SIDE, nearest=True)
    valid = reduced.valid.copy()
    out_h, out_w = valid.shape
    fx, fy = source.width / out_w, source.height / out_h
    for x0, y0, w, h in excluded:
        valid[int(y0 / fy):int(np.ceil((y0 + h) / fy)), int(x0 / fx):int(np.ceil((x0 + w) / fx))] = False
    share = float(valid.mean())
    outlines = _outlines(valid, fx, fy)
    if source.geo is not None:
        rows, cols = _edges(out_h, AREA_CELLS), _edges(out_w, AREA_CELLS)
        valid_count = np.add.reduceat(np.add.reduceat(valid.astype(np.float64), rows[:-1], 0), cols[:-1], 1)
        cell_pixels = np.outer(np.diff(rows), np.diff(cols))
        areas = source.geo.cell_areas_km2(cols * fx, rows * fy)
        return CountingArea(float((areas * valid_count / cell_pixels).sum()), "km", share, outlines)
    pixels = share * source.width * source.height
    if metres_per_pixel:
        return CountingArea(pixels * (metres_per_pixel / 1000.0) ** 2, "km", share, outlines)
    return CountingArea(pixels, "pixels", share, outlines)
