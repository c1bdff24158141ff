"""Train and validation tiles from disjoint regions of one raster, never a shuffle of overlapping tiles.

The raster is cut into a grid of rectangular regions, each a few tiles wide. Region (row r, column c)
is for validation when (2r + c) is a multiple of `period` = round(1 / val_fraction): a knight's-move
pattern that spreads the validation regions over the raster (so they see its whole range of terrain)
and, for period >= 3, never puts two of them side by side. Every validation region gives up a strip
`gap` pixels wide (one tile overlap) on each side that faces a training region, so no training tile
comes closer than `gap` to a validation tile and no crater is labelled in both splits. Each region is
covered by its own overlapping tiles (the last of a row moved back to end on the region's edge).
"""
from dataclasses import dataclass
from typing import List, Tuple

from yolox.crater_catalog.tiling import tile_starts
from yolox.data.errors import DataError

__all__ = ["TileWindow", "SplitPlan", "plan_split", "TILES_PER_REGION"]

TILES_PER_REGION = (4, 3, 2, 1)     # region sides tried, in tiles, largest first
MIN_PART = 32                       # the narrowest part a tiny raster is split into, in pixels


@dataclass(frozen=True)
class TileWindow:
    """One tile's window in the raster and the split it belongs to."""

    col_off: int
    row_off: int
    width: int
    height: int
    split: str      # "train" or "val"


@dataclass(frozen=True)
class SplitPlan:
    windows: List[TileWindow]
    regions: List[Tuple[int, int, int, int, str]]    # (x0, y0, x1, y1, split) after the gap strips
    reason: str


def _grid(width: int, height: int, tile: int, overlap: int, gap: int, period: int) -> Tuple[int, int, int]:
    """(columns, rows, region side): the largest regions that still give about two per validation region."""
    for tiles in TILES_PER_REGION:
        side = tiles * (tile - overlap) + overlap + 2 * gap
        columns, rows = max(1, width // side), max(1, height // side)
        if columns * rows >= 2 * period:
            break
    return columns, rows, side


def _is_val(row: int, column: int, rows: int, columns: int, period: int) -> bool:
    if columns == 1:
        return row % period == 0
    if rows == 1:
        return column % period == 0
    return (2 * row + column) % period == 0


def _is_train(row: int, column: int, rows: int, columns: int, period: int) -> bool:
    """True for a training region; False for a validation one and outside the grid."""
    return 0 <= row < rows and 0 <= column < columns and not _is_val(row, column, rows, columns, period)


def _edges(length: int, count: int) -> List[int]:
    return [round(i * length / count) for i in range(count + 1)]


def _regions(width: int, height: int, columns: int, rows: int, period: int, gap: int) -> List[Tuple]:
    """(x0, y0, x1, y1, split) of every region, validation ones shrunk by `gap` towards training neighbours."""
    xs, ys = _edges(width, columns), _edges(height, rows)
    regions = []
    for r in range(rows):
        for c in range(columns):
            x0, y0, x1, y1 = xs[c], ys[r], xs[c + 1], ys[r + 1]
            if not _is_val(r, c, rows, columns, period):
                regions.append((x0, y0, x1, y1, "train"))
                continue
            left, top, right, bottom = (gap * _is_train(rr, cc, rows, columns, period)
                                        for rr, cc in ((r, c - 1), (r - 1, c), (r, c + 1), (r + 1, c)))
            regions.append((x0 + left, y0 + top, x1 - right, y1 - bottom, "val"))
    return regions


def _two_parts(width: int, height: int, tile: int, gap: int, val_fraction: float) -> List[Tuple]:
    """A training and a validation part across the longer side, `gap` apart, for rasters too small for a grid."""
    length = max(width, height)
    val_length = max(round(length * val_fraction), min(tile, (length - gap) // 2))
    cut = length - val_length - gap
    if min(cut, val_length) < MIN_PART:
        raise DataError(f"a raster of {width} x {height} px is too small for a train/validation split with a gap of "
                        f"{gap} px (--overlap): use --val-fraction 0 and a validation set of your own")
    if width >= height:
        return [(0, 0, cut, height, "train"), (cut + gap, 0, width, height, "val")]
    return [(0, 0, width, cut, "train"), (0, cut + gap, width, height, "val")]


def _cover(region: Tuple, tile: int, overlap: int) -> List[TileWindow]:
    x0, y0, x1, y1, split = region
    return [TileWindow(x0 + xs, y0 + ys, min(tile, x1 - x0 - xs), min(tile, y1 - y0 - ys), split)
            for ys in tile_starts(y1 - y0, tile, overlap) for xs in tile_starts(x1 - x0, tile, overlap)]


def plan_split(width: int, height: int, tile: int, overlap: int, val_fraction: float) -> SplitPlan:
    """The tiles of a `width` x `height` raster, in regions split for training and validation."""
    if not 0.0 <= val_fraction <= 0.5:
        raise DataError(f"--val-fraction {val_fraction}: use a value from 0 (no validation split) to 0.5")
    if val_fraction == 0:
        region = (0, 0, width, height, "train")
        return SplitPlan(_cover(region, tile, overlap), [region], "split: none asked (--val-fraction 0), all "
                                                                  "tiles are for training")
    gap = max(overlap, 1)
    period = max(2, round(1.0 / val_fraction))
    columns, rows, side = _grid(width, height, tile, overlap, gap, period)
    if columns * rows >= 2:
        regions = _regions(width, height, columns, rows, period, gap)
        layout = f"{columns} x {rows} regions of about {side} px"
    else:
        regions = _two_parts(width, height, tile, gap, val_fraction)
        layout = f"smaller than two regions of {side} px, so cut in two across its longer side"
    windows = [window for region in regions for window in _cover(region, tile, overlap)]
    area = {split: sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1, s in regions if s == split)
            for split in ("train", "val")}
    val_regions = sum(region[4] == "val" for region in regions)
    reason = (f"split: {layout}, {val_regions} for validation "
              f"({area['val'] / max(1, area['train'] + area['val']):.0%} of the area, {val_fraction:.0%} asked), "
              f"each {gap} px (one overlap) from every training tile; whole regions rather than a shuffle of "
              "overlapping tiles, because neighbouring tiles share craters and a shuffle would put the same "
              "crater in both splits")
    return SplitPlan(windows, regions, reason)
