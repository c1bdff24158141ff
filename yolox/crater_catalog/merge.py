"""Seams: drop craters cut by a tile edge, then merge the copies of one crater found in several tiles.

A crater cut by an inner tile edge is seen whole by a neighbouring tile (the overlap is chosen for it),
so the cut copy is dropped. A crater whole in two overlapping tiles (or at two scales) is found twice;
copies whose centres lie within `dist_frac` of the larger diameter and whose diameters differ by less
than `max_diam_ratio` are one crater: the score-weighted mean of their centres and diameters, with the
best score. The diameter bound keeps a small crater on the floor of a large one apart from it.
"""
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from yolox.crater_catalog.tiling import Tile

__all__ = ["Craters", "COLUMNS", "cut_by_inner_edge", "merge_duplicates"]


COLUMNS = ("x", "y", "diameter", "score", "fraction")


@dataclass
class Craters:
    """Crater centres and diameters in full-resolution pixels, their scores, and the share of each crater's
    disc inside the image's valid data (1 unless the crater touches the footprint's edge); 1-D arrays."""

    x: np.ndarray
    y: np.ndarray
    diameter: np.ndarray
    score: np.ndarray
    fraction: Optional[np.ndarray] = field(default=None)

    def __post_init__(self) -> None:
        if self.fraction is None:
            self.fraction = np.ones(len(self.x), np.float64)

    @classmethod
    def empty(cls) -> "Craters":
        return cls(*(np.zeros(0, np.float64) for _ in COLUMNS))

    @classmethod
    def from_table(cls, table: np.ndarray) -> "Craters":
        """From rows (x, y, diameter, score, fraction)."""
        table = np.asarray(table, np.float64).reshape(-1, len(COLUMNS))
        return cls(*(table[:, i].copy() for i in range(len(COLUMNS))))

    def table(self) -> np.ndarray:
        """Rows (x, y, diameter, score, fraction), float64."""
        return np.stack([np.asarray(getattr(self, name), np.float64) for name in COLUMNS], 1).reshape(-1, len(COLUMNS))

    @classmethod
    def concat(cls, parts) -> "Craters":
        parts = list(parts)
        if not parts:
            return cls.empty()
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in COLUMNS))

    def __len__(self) -> int:
        return len(self.x)

    def select(self, keep: np.ndarray) -> "Craters":
        return Craters(*(getattr(self, name)[keep] for name in COLUMNS))


def cut_by_inner_edge(boxes: np.ndarray, tile: Tile, margin: float) -> np.ndarray:
    """True for boxes (x1, y1, x2, y2 in the tile's model pixels) within `margin` of an edge inside the image."""
    return ((tile.inner_left & (boxes[:, 0] <= margin))
            | (tile.inner_top & (boxes[:, 1] <= margin))
            | (tile.inner_right & (boxes[:, 2] >= tile.out_width - margin))
            | (tile.inner_bottom & (boxes[:, 3] >= tile.out_height - margin)))


def merge_duplicates(craters: Craters, dist_frac: float = 0.5, max_diam_ratio: float = 1.5) -> Craters:
    """One crater per group of copies (see the module docstring), best score first."""
    if len(craters) == 0:
        return craters
    order_x = np.argsort(craters.x, kind="stable")
    sorted_x = craters.x[order_x]
    taken = np.zeros(len(craters), bool)
    merged = []
    for i in np.argsort(-craters.score, kind="stable"):
        if taken[i]:
            continue
        # a partner is at most max_diam_ratio times larger, so its centre is within this reach in x
        reach = dist_frac * craters.diameter[i] * max_diam_ratio
        lo = np.searchsorted(sorted_x, craters.x[i] - reach, side="left")
        hi = np.searchsorted(sorted_x, craters.x[i] + reach, side="right")
        near = order_x[lo:hi]
        near = near[~taken[near]]
        d_i, d_near = craters.diameter[i], craters.diameter[near]
        larger = np.maximum(d_i, d_near)
        ratio = larger / np.maximum(np.minimum(d_i, d_near), 1e-9)
        dist = np.hypot(craters.x[near] - craters.x[i], craters.y[near] - craters.y[i])
        group = near[(dist < dist_frac * larger) & (ratio < max_diam_ratio)]
        group = np.union1d(group, [i])
        taken[group] = True
        weights = craters.score[group] + 1e-12
        merged.append([np.average(craters.x[group], weights=weights), np.average(craters.y[group], weights=weights),
                       np.average(craters.diameter[group], weights=weights), craters.score[i],
                       np.average(craters.fraction[group], weights=weights)])
    return Craters.from_table(np.asarray(merged, np.float64))
