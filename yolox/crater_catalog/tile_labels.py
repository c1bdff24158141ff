"""The labels of one tile: the crater boxes it holds, clipped to its window, and what was left out and why."""
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["TileLabels", "label_tile", "ColumnIndex", "MOST_INSIDE"]

MOST_INSIDE = 0.5   # a box cut by the tile's edge is kept when more than this share of its area is inside


@dataclass
class TileLabels:
    """Boxes [k, 4] (x, y, w, h) in tile pixels, the crater indices they label, and the counts of this tile."""

    boxes: np.ndarray
    index: np.ndarray
    clipped: int = 0           # kept, cut by the tile's edge
    dropped_edge: int = 0      # mostly outside the tile
    dropped_nodata: int = 0    # centre on no-data pixels


def label_tile(boxes: np.ndarray, col_off: int, row_off: int, width: int, height: int,
               valid: Optional[np.ndarray] = None) -> TileLabels:
    """Labels of the window from crater boxes [N, 4] (x0, y0, x1, y1, raster pixels).

    `valid` is the window's [height, width] mask of pixels holding data (None: all do).
    """
    x0, y0 = boxes[:, 0] - col_off, boxes[:, 1] - row_off
    x1, y1 = boxes[:, 2] - col_off, boxes[:, 3] - row_off
    cx0, cy0 = np.clip(x0, 0, width), np.clip(y0, 0, height)
    cx1, cy1 = np.clip(x1, 0, width), np.clip(y1, 0, height)
    inside_area = (cx1 - cx0) * (cy1 - cy0)
    touching = inside_area > 0
    area = np.maximum((x1 - x0) * (y1 - y0), 1e-12)
    most_inside = touching & (inside_area > MOST_INSIDE * area)
    whole = most_inside & (x0 >= 0) & (y0 >= 0) & (x1 <= width) & (y1 <= height)
    on_nodata = np.zeros_like(most_inside)
    if valid is not None:
        col = np.clip(((cx0 + cx1) / 2).astype(int), 0, width - 1)
        row = np.clip(((cy0 + cy1) / 2).astype(int), 0, height - 1)
        on_nodata = most_inside & ~valid[row, col]
    kept = most_inside & ~on_nodata
    xywh = np.stack([cx0, cy0, cx1 - cx0, cy1 - cy0], axis=1)[kept]
    return TileLabels(boxes=xywh, index=np.flatnonzero(kept), clipped=int((kept & ~whole).sum()),
                      dropped_edge=int((touching & ~most_inside).sum()), dropped_nodata=int(on_nodata.sum()))


class ColumnIndex:
    """Craters sorted by centre column, so each tile looks only at those that can reach it (a large mosaic
    holds many thousand tiles and craters)."""

    def __init__(self, boxes: np.ndarray) -> None:
        centres = (boxes[:, 0] + boxes[:, 2]) / 2
        self.order = np.argsort(centres, kind="stable")
        self.sorted_centres = centres[self.order]
        self.half_width = float((boxes[:, 2] - boxes[:, 0]).max() / 2) if len(boxes) else 0.0

    def near(self, col_off: int, width: int) -> np.ndarray:
        """Indices (ascending) of the craters whose box may overlap columns [col_off, col_off + width)."""
        low = np.searchsorted(self.sorted_centres, col_off - self.half_width, side="left")
        high = np.searchsorted(self.sorted_centres, col_off + width + self.half_width, side="right")
        return np.sort(self.order[low:high])
