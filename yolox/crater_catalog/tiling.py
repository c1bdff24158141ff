"""Cover an image with overlapping model-sized tiles, at one or more scales.

At scale s the image is seen reduced by s (a crater of D pixels looks s*D pixels wide), and the tiles
are laid on that reduced grid: `tile` pixels wide, `overlap` pixels shared with the neighbour, the last
tile of a row or column moved back so that it ends on the image edge. A crater up to
`overlap - 2 * edge_margin` pixels wide (at that scale) lies whole, clear of the edge margin, inside
at least one tile.
"""
import math
from dataclasses import dataclass
from typing import List

__all__ = ["Tile", "tile_starts", "plan_tiles"]


@dataclass(frozen=True)
class Tile:
    """One window: its source pixels, the model pixels they become, and which of its edges are inside the image."""

    x0: int            # source window, full-resolution pixels
    y0: int
    width: int
    height: int
    out_width: int     # the window's size at this scale (model pixels, before padding to the canvas)
    out_height: int
    scale: float
    inner_left: bool   # True where the edge cuts through the image, False on the image's own border
    inner_top: bool
    inner_right: bool
    inner_bottom: bool

    @property
    def source_per_model_px(self) -> float:
        return self.width / self.out_width


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Starts of tiles of size `tile` covering [0, length) with at least `overlap` shared between neighbours."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile size {tile}")
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted(set(starts))


def plan_tiles(width: int, height: int, tile: int, overlap: int, scale: float = 1.0) -> List[Tile]:
    """The tiles of one scale, row by row."""
    scaled_w, scaled_h = max(1, round(width * scale)), max(1, round(height * scale))
    tiles = []
    for ys in tile_starts(scaled_h, tile, overlap):
        for xs in tile_starts(scaled_w, tile, overlap):
            out_w, out_h = min(tile, scaled_w - xs), min(tile, scaled_h - ys)
            # source window: the same stretch of the image at full resolution
            x0, y0 = round(xs / scale), round(ys / scale)
            x1 = width if xs + out_w >= scaled_w else min(width, round((xs + out_w) / scale))
            y1 = height if ys + out_h >= scaled_h else min(height, round((ys + out_h) / scale))
            tiles.append(Tile(x0=x0, y0=y0, width=x1 - x0, height=y1 - y0, out_width=out_w, out_height=out_h,
                              scale=scale, inner_left=xs > 0, inner_top=ys > 0,
                              inner_right=xs + out_w < scaled_w, inner_bottom=ys + out_h < scaled_h))
    return tiles
