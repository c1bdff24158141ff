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
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from loguru import logger

from yolox.crater_catalog.merge import Craters, cut_by_inner_edge, merge_duplicates
from yolox.crater_catalog.sources import ImageSource
from yolox.crater_catalog.tiling import Tile, plan_tiles
from yolox.utils.progress import Progress

__all__ = ["DetectionSettings", "TileDetector", "detect_source", "overlap_for", "largest_trained_crater_px"]

# boxes reach this much beyond the rim in practice; the overlap leaves room for it
BOX_SLACK = 1.1
# enlarging further only multiplies the tiles: a model trained at 2x (the measured case) wants scale 2
MAX_SCALE = 4.0


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

    def __post_init__(self) -> None:
        if self.tile % 32:
            raise ValueError(f"tile size {self.tile} must be a multiple of 32 (the model's largest stride)")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap {self.overlap} must be in [0, tile size {self.tile})")
        if not self.scales or any(not 0 < s <= MAX_SCALE for s in self.scales):
            raise ValueError(f"scales {self.scales} must lie in (0, {MAX_SCALE:g}], e.g. 1,0.5 (craters larger "
                             "than a tile) or 2 (a model trained at twice the images' size)")

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


def _read_canvases(source: ImageSource, tiles: Sequence[Tile], side: int) -> np.ndarray:
    """The tiles' pixels top-left on letterbox-grey canvases of side `side`."""
    from yolox.data.data_augment import PAD_VALUE

    canvases = np.full((len(tiles), side, side, 3), PAD_VALUE, np.uint8)
    for canvas, tile in zip(canvases, tiles):
        canvas[:tile.out_height, :tile.out_width] = source.read_bgr(tile.x0, tile.y0, tile.width, tile.height,
                                                                    tile.out_width, tile.out_height)
    return canvases


def _tile_craters(rows: np.ndarray, tile: Tile, margin: float) -> Craters:
    """Craters of one tile in full-resolution pixels, those cut by an inner edge dropped."""
    rows = rows[~cut_by_inner_edge(rows[:, :4], tile, margin)]
    factor = tile.source_per_model_px
    x = tile.x0 + 0.5 * (rows[:, 0] + rows[:, 2]) * factor
    y = tile.y0 + 0.5 * (rows[:, 1] + rows[:, 3]) * tile.height / tile.out_height
    diameter = 0.5 * ((rows[:, 2] - rows[:, 0]) + (rows[:, 3] - rows[:, 1])) * factor
    return Craters(x, y, diameter, rows[:, 4])


def _size_floor(settings: DetectionSettings, scales: Sequence[float], index: int) -> float:
    """A coarser scale keeps only craters too large for the next finer one (with a margin, merged later)."""
    return 0.0 if index == 0 else 0.8 * settings.whole_diameter_px(scales[index - 1])


def detect_source(source: ImageSource, detector: Callable[[np.ndarray], List[np.ndarray]],
                  settings: DetectionSettings, progress_desc: str = "tiles") -> Tuple[Craters, int]:
    """All craters of `source` (merged across tiles and scales) and the number of tiles run."""
    scales = sorted(set(settings.scales), reverse=True)
    plans = [plan_tiles(source.width, source.height, settings.tile, settings.overlap, s) for s in scales]
    jobs = [(index, plans[index][i:i + settings.batch_size])
            for index in range(len(scales)) for i in range(0, len(plans[index]), settings.batch_size)]
    found: List[Craters] = []
    with ThreadPoolExecutor(max_workers=1) as reader, \
            Progress(total=sum(len(p) for p in plans), desc=progress_desc, unit="tile") as progress:
        pending = reader.submit(_read_canvases, source, jobs[0][1], settings.tile) if jobs else None
        for job_index, (scale_index, tiles) in enumerate(jobs):
            canvases = pending.result()
            if job_index + 1 < len(jobs):
                pending = reader.submit(_read_canvases, source, jobs[job_index + 1][1], settings.tile)
            floor = _size_floor(settings, scales, scale_index)
            for rows, tile in zip(detector(canvases), tiles):
                craters = _tile_craters(rows, tile, settings.edge_margin)
                found.append(craters.select(craters.diameter >= floor))
            progress.update(len(tiles))
    merged = merge_duplicates(Craters.concat(found), settings.merge_dist_frac, settings.merge_max_diam_ratio)
    return merged, sum(len(p) for p in plans)
