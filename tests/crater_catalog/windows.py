"""Measures of a tile split plan for the tests: gaps between windows, tiles per split."""
from typing import Tuple

from yolox.crater_catalog.tile_split import SplitPlan, TileWindow


def window_gap(a: TileWindow, b: TileWindow) -> int:
    """Pixels between two windows (the larger of the column and row separations; <= 0 when they touch)."""
    dx = max(a.col_off - (b.col_off + b.width), b.col_off - (a.col_off + a.width))
    dy = max(a.row_off - (b.row_off + b.height), b.row_off - (a.row_off + a.height))
    return max(dx, dy)


def split_counts(plan: SplitPlan) -> Tuple[int, int]:
    """(training tiles, validation tiles)."""
    val = sum(window.split == "val" for window in plan.windows)
    return len(plan.windows) - val, val
