"""Tiled crater detection on one image: read tiles, run the model in batches, keep each crater once.

The model sees every tile at the image's own resolution (scale 1), reduced (scales below 1, for craters
larger than a tile) or enlarged (scales above 1, for a model trained on enlarged images), padded to one
square canvas so that a batch has a single shape. Tile reading runs in a background thread while the
model works on the previous batch.
"""
import math
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from loguru import logger

from yolox.crater_catalog.chunks import Chunk, plan_chunks
from yolox.crater_catalog.footprint import disc_fraction
from yolox.crater_catalog.merge import Craters, cut_by_inner_edge, merge_duplicates
from yolox.crater_catalog.parts import ChunkResult
from yolox.crater_catalog.sources import ImageSource
from yolox.crater_catalog.tiling import Tile
from yolox.utils.progress import Progress
from yolox.utils.user_errors import one_line

__all__ = ["DetectionSettings", "TileDetector", "run_chunks", "combine_chunks",
           "plan_source_chunks", "overlap_for", "largest_trained_crater_px", "MIN_VALID_SHARE"]

# boxes reach this much beyond the rim in practice; the overlap leaves room for it
BOX_SLACK = 1.1
# enlarging further only multiplies the tiles: a model trained at 2x (the measured case) wants scale 2
MAX_SCALE = 4.0
# a tile with less valid data than this share is not run: too little terrain to hold a crater it could
# report whole (the neighbouring tiles' overlap covers the rest); such tiles are counted as no-data
MIN_VALID_SHARE = 0.01


@dataclass(frozen=True)
class DetectionSettings:
    """How an image is tiled and how the tiles' craters are merged."""

    tile: int                          # canvas side in model pixels (a multiple of 32)
    overlap: int                       # pixels shared by neighbouring tiles, at every scale
    scales: Tuple[float, ...] = (1.0,)
    batch_size: int = 8
    edge_margin: float = 2.0           # a box this close to an inner tile edge counts as cut
    merge_dist_frac: float = 0.5
    merge_max_diam_ratio: float = 1.5
    chunk_tiles: int = 64              # tiles per recorded chunk (the unit of resume and of sharding)

    def __post_init__(self) -> None:
        if self.tile % 32:
            raise ValueError(f"tile size {self.tile} must be a multiple of 32 (the model's largest stride)")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be in [0, tile size {self.tile})")
        if not self.scales or any(not 0 < s <= MAX_SCALE for s in self.scales):
            raise ValueError(f"scales {self.scales} must lie in (0, {MAX_SCALE:g}], e.g. 1,0.5 (craters larger "
                             "than a tile) or 2 (a model trained at twice the images' size)")

    def ordered_scales(self) -> Tuple[float, ...]:
        """The scales, each once, largest (finest) first: the order of the chunks."""
        return tuple(sorted(set(self.scales), reverse=True))

    def whole_diameter_px(self, scale: float) -> float:
        """Largest crater (full-resolution pixels) that some tile at `scale` holds whole."""
        return (self.overlap - 2 * self.edge_margin) / scale


def largest_trained_crater_px(exp) -> Optional[float]:
    """Largest crater side (model pixels) in the exp's training labels, or None when they cannot be read."""
    import os

    from yolox.data.datasets import load_split_as_coco

    if not exp.data_dir or not os.path.isdir(exp.data_dir):
        return None
    try:
        data, _ = load_split_as_coco(exp.data_dir, "train", exp.data_format)
    except (OSError, ValueError, KeyError) as error:
        logger.info(f"training labels of {exp.data_dir} unreadable ({str(error)[:100]})")
        return None
    sizes = {image["id"]: (image["width"], image["height"]) for image in data.get("images", [])}
    input_h, input_w = exp.input_size
    largest = 0.0
    for ann in data.get("annotations", []):
        width, height = sizes.get(ann["image_id"], (input_w, input_h))
        ratio = min(input_w / width, input_h / height)       # the training resize
        largest = max(largest, max(ann["bbox"][2], ann["bbox"][3]) * ratio)
    return largest or None


def overlap_for(largest_crater_px: Optional[float], tile: int, edge_margin: float = 2.0) -> int:
    """Overlap that keeps the largest crater whole in some tile (capped at half a tile, with a warning)."""
    if largest_crater_px is None:
        overlap = tile // 4
        logger.info(f"largest trained crater unknown (training labels not found): overlap {overlap} px "
                    "(a quarter tile); set --overlap to the largest crater diameter in pixels")
        return overlap
    overlap = math.ceil(largest_crater_px * BOX_SLACK + 2 * edge_margin)
    if overlap > tile // 2:
        logger.warning(f"craters up to {largest_crater_px:.0f} px need an overlap of {overlap} px, more than half "
                       f"the {tile} px tile: using {tile // 2}; add --scales 1,0.5 for the largest ones")
        overlap = tile // 2
    return overlap


class TileDetector:
    """The model on a batch of BGR uint8 canvases [B, S, S, 3]: per canvas, rows (x1, y1, x2, y2, score)."""

    def __init__(self, model: torch.nn.Module, policy, num_classes: int, conf: float, nms: float,
                 fp16: bool = False) -> None:
        self.policy = policy
        self.model = policy.place_model(model).eval()
        self.num_classes = num_classes
        self.conf = conf
        self.nms = nms
        self.fp16 = fp16

    @torch.no_grad()
    def __call__(self, canvases: np.ndarray) -> List[np.ndarray]:
        from yolox.utils.boxes import postprocess

        batch = torch.from_numpy(np.ascontiguousarray(canvases.transpose(0, 3, 1, 2))).float()
        batch = self.policy.to(batch)
        if self.policy.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with self.policy.autocast() if self.fp16 else nullcontext():
            outputs = self.model(batch)
        found = postprocess(outputs.float(), self.num_classes, self.conf, self.nms, class_agnostic=True)
        rows = []
        for detections in found:
            if detections is None:
                rows.append(np.zeros((0, 5), np.float64))
                continue
            detections = detections.cpu().double().numpy()
            rows.append(np.concatenate([detections[:, :4], (detections[:, 4] * detections[:, 5])[:, None]], 1))
        return rows


def _read_canvases(source: ImageSource, tiles: Sequence[Tile], side: int
                   ) -> Tuple[np.ndarray, List[Optional[np.ndarray]]]:
    """The tiles' pixels top-left on letterbox-grey canvases of side `side`, and each tile's valid-data mask."""
    from yolox.data.data_augment import PAD_VALUE

    canvases = np.full((len(tiles), side, side, 3), PAD_VALUE, np.uint8)
    masks = []
    for canvas, tile in zip(canvases, tiles):
        pixels, valid = source.read_tile(tile.x0, tile.y0, tile.width, tile.height, tile.out_width, tile.out_height)
        canvas[:tile.out_height, :tile.out_width] = pixels
        masks.append(valid)
    return canvases, masks


def _tile_craters(rows: np.ndarray, tile: Tile, margin: float, valid: Optional[np.ndarray]) -> Craters:
    """Craters of one tile in full-resolution pixels, those cut by an inner edge dropped, with the share of
    each disc on valid data."""
    rows = rows[~cut_by_inner_edge(rows[:, :4], tile, margin)]
    cx, cy = 0.5 * (rows[:, 0] + rows[:, 2]), 0.5 * (rows[:, 1] + rows[:, 3])
    size = 0.5 * ((rows[:, 2] - rows[:, 0]) + (rows[:, 3] - rows[:, 1]))
    factor = tile.source_per_model_px
    fraction = disc_fraction(cx, cy, size / 2, tile, valid)
    return Craters(tile.x0 + cx * factor, tile.y0 + cy * tile.height / tile.out_height, size * factor, rows[:, 4],
                   fraction)


def _size_floor(settings: DetectionSettings, scales: Sequence[float], index: int) -> float:
    """A coarser scale keeps only craters too large for the next finer one (with a margin, merged later)."""
    return 0.0 if index == 0 else 0.8 * settings.whole_diameter_px(scales[index - 1])


def _valid_share(valid: Optional[np.ndarray]) -> float:
    return 1.0 if valid is None else float(valid.mean())


class _ChunkTally:
    """Craters and tile counts of the chunk being run."""

    def __init__(self) -> None:
        self.found: List[Craters] = []
        self.tiles_run = 0
        self.tiles_nodata = 0

    def result(self) -> ChunkResult:
        return ChunkResult(Craters.concat(self.found), self.tiles_run, self.tiles_nodata)


def _batches(chunks: Sequence[Chunk], batch_size: int) -> List[Tuple[Chunk, Tuple[Tile, ...], bool]]:
    """(chunk, tiles, last batch of the chunk) in order."""
    return [(chunk, chunk.tiles[i:i + batch_size], i + batch_size >= len(chunk.tiles))
            for chunk in chunks for i in range(0, len(chunk.tiles), batch_size)]


def run_chunks(source: ImageSource, detector: Callable[[np.ndarray], List[np.ndarray]],
               settings: DetectionSettings, chunks: Sequence[Chunk], on_done: Callable[[Chunk, ChunkResult], None],
               on_failed: Callable[[Chunk, str], None], progress_desc: str = "tiles") -> None:
    """Run `chunks`, handing each finished chunk to `on_done` and each unreadable one to `on_failed`.

    Tiles with less than MIN_VALID_SHARE of valid data are not run (counted as no-data). A read error
    skips the rest of its chunk with a warning naming the chunk and its window.
    """
    scales = settings.ordered_scales()
    batches = _batches(chunks, settings.batch_size)
    tallies: Dict[int, _ChunkTally] = {}
    failed = set()
    with ThreadPoolExecutor(max_workers=1) as reader, \
            Progress(total=sum(len(c.tiles) for c in chunks), desc=progress_desc, unit="tile") as progress:
        pending = reader.submit(_read_canvases, source, batches[0][1], settings.tile) if batches else None
        for number, (chunk, tiles, last) in enumerate(batches):
            current = pending
            if number + 1 < len(batches):
                pending = reader.submit(_read_canvases, source, batches[number + 1][1], settings.tile)
            progress.update(len(tiles))
            if chunk.index in failed:
                continue
            try:
                canvases, masks = current.result()
            except OSError as error:
                failed.add(chunk.index)
                tallies.pop(chunk.index, None)
                logger.warning(f"{source.path}: {chunk.describe()} skipped, a block cannot be read "
                               f"({one_line(error)[:200]})")
                on_failed(chunk, one_line(error))
                continue
            tally = tallies.setdefault(chunk.index, _ChunkTally())
            keep = [i for i, mask in enumerate(masks) if _valid_share(mask) >= MIN_VALID_SHARE]
            tally.tiles_nodata += len(tiles) - len(keep)
            tally.tiles_run += len(keep)
            floor = _size_floor(settings, scales, chunk.scale_index)
            for rows, i in zip(detector(canvases[keep]) if keep else [], keep):
                craters = _tile_craters(rows, tiles[i], settings.edge_margin, masks[i])
                tally.found.append(craters.select(craters.diameter >= floor))
            if last:
                on_done(chunk, tallies.pop(chunk.index).result())


def combine_chunks(results: Sequence[ChunkResult], settings: DetectionSettings) -> Craters:
    """The catalogue from the chunks' craters (in chunk order): copies across tiles and scales merged."""
    return merge_duplicates(Craters.concat(r.craters for r in results), settings.merge_dist_frac,
                            settings.merge_max_diam_ratio)


def plan_source_chunks(source: ImageSource, settings: DetectionSettings) -> List[Chunk]:
    return plan_chunks(source.width, source.height, settings.tile, settings.overlap, settings.ordered_scales(),
                       settings.chunk_tiles)
