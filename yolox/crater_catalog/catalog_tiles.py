"""Training tiles from a georeferenced mosaic and a crater database, in the COCO layout `--data-dir` reads.

    make_crater_tiles("ctx_mosaic.tif", "robbins_2012.csv", "tiles/")

The craters are projected from the body's longitude and latitude into the raster (their rims, so the
boxes follow the projection's distortion), the raster is cut into train and validation regions that no
crater spans (`tile_split`), every tile is read through a rasterio window and stretched to 8 bits with
the rule whole-image detection uses (`sources`), and each image record keeps its window in the raster so
detections map back to the mosaic. The catalogue's completeness limit (its smallest crater in the raster)
goes in the `info` block of both annotation files, where the crater workflow's completeness warning reads it.
"""
import json
import os
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np
from loguru import logger
from tabulate import tabulate

from yolox.crater_catalog.catalogue_reader import CraterTable, describe, read_catalogue
from yolox.crater_catalog.geo import GeoReference
from yolox.crater_catalog.sources import open_georeferenced_raster
from yolox.crater_catalog.tile_labels import ColumnIndex, TileLabels, label_tile
from yolox.crater_catalog.tile_split import TileWindow, plan_split
from yolox.utils.progress import track

__all__ = ["TileSettings", "CraterBoxes", "project_catalogue", "make_crater_tiles", "completeness_info",
           "SPLIT_FILES"]

CATEGORY = {"id": 1, "name": "crater", "supercategory": "crater"}
SPLIT_FILES = {"train": ("train2017", "instances_train2017.json"), "val": ("val2017", "instances_val2017.json")}


@dataclass(frozen=True)
class TileSettings:
    tile: int = 512
    overlap: int = 64
    val_fraction: float = 0.2
    min_diameter_px: float = 4.0
    max_nodata: float = 0.5      # tiles with a larger share of no-data pixels are skipped


@dataclass(frozen=True)
class CraterBoxes:
    """The catalogue's craters that reach into the raster: rim boxes (x0, y0, x1, y1 px) and diameters."""

    boxes: np.ndarray
    diameter_km: np.ndarray
    diameter_px: np.ndarray     # geometric mean of the box's sides

    def subset(self, keep: np.ndarray) -> "CraterBoxes":
        return CraterBoxes(self.boxes[keep], self.diameter_km[keep], self.diameter_px[keep])


def project_catalogue(table: CraterTable, geo: GeoReference, width: int, height: int
                      ) -> Tuple[CraterBoxes, Dict[str, int]]:
    """Rim boxes of the craters reaching into a `width` x `height` raster, and counts of those left out."""
    lon, lat = table.lonlat(geo)
    # centres first (cheap for a global database), then rims only near the raster
    cx, cy = geo.lonlat_to_pixels(lon, lat)
    reach = table.diameter / geo.metres_per_pixel()
    near = (np.isfinite(cx) & np.isfinite(cy) & (cx > -reach) & (cx < width + reach)
            & (cy > -reach) & (cy < height + reach))
    boxes = geo.rim_boxes(lon[near], lat[near], table.diameter[near])
    projectable = np.isfinite(boxes).all(axis=1)
    overlaps = np.zeros(len(boxes), bool)
    overlaps[projectable] = ((boxes[projectable, 2] > 0) & (boxes[projectable, 0] < width)
                             & (boxes[projectable, 3] > 0) & (boxes[projectable, 1] < height))
    boxes = boxes[overlaps]
    sides = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-9)
    craters = CraterBoxes(boxes, table.diameter[near][overlaps] / 1000.0, np.sqrt(sides[:, 0] * sides[:, 1]))
    counts = {"craters outside the raster": int(len(table) - near.sum() + (projectable & ~overlaps).sum()),
              "craters whose rim does not project into the raster's CRS": int((~projectable).sum()),
              "craters reaching into the raster": len(craters.boxes)}
    return craters, counts


def completeness_info(diameter_km: np.ndarray, diameter_px: np.ndarray, min_diameter_px: float) -> Dict[str, float]:
    """The dataset's record of its labels' lower limit (the catalogue's smallest crater in the raster)."""
    smallest = int(np.argmin(diameter_px)) if len(diameter_px) else None
    return {"catalogue_min_diameter_km": None if smallest is None else round(float(diameter_km[smallest]), 6),
            "catalogue_min_diameter_px": None if smallest is None else round(float(diameter_px[smallest]), 3),
            "min_diameter_px": float(min_diameter_px)}


def _write_atomic(path: str, data: bytes) -> None:
    """Write through a temporary name, so an interrupted run leaves no half file."""
    partial = f"{path}.partial"
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _tile_pixels(source, window: TileWindow) -> Tuple[np.ndarray, np.ndarray]:
    """(8-bit tile, grey when the raster has one band; its mask of pixels holding data)."""
    args = (window.col_off, window.row_off, window.width, window.height)
    image, valid = source.read_tile(*args)
    valid = np.ones(image.shape[:2], bool) if valid is None else valid
    return (image[:, :, 0] if len(source.bands) == 1 else image), valid


def _image_record(image_id: int, file_name: str, window: TileWindow, raster_name: str) -> dict:
    return {"id": image_id, "file_name": file_name, "width": window.width, "height": window.height,
            "window": [window.col_off, window.row_off, window.width, window.height], "raster": raster_name}


def _annotations(labels: TileLabels, image_id: int, first_id: int) -> List[dict]:
    return [{"id": first_id + k, "image_id": image_id, "category_id": CATEGORY["id"],
             "bbox": [round(v, 2) for v in box], "area": round(box[2] * box[3], 2), "iscrowd": 0}
            for k, box in enumerate(labels.boxes.tolist())]


class _Collector:
    """The two COCO dicts being filled, and the counts of the run."""

    def __init__(self, info: dict) -> None:
        self.coco = {split: {"info": dict(info, split=split), "images": [], "annotations": [],
                             "categories": [CATEGORY]} for split in SPLIT_FILES}
        self.counts: Dict[str, int] = {}

    def add(self, key: str, value: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + value

    def add_tile(self, window: TileWindow, file_name: str, raster_name: str, labels: TileLabels) -> None:
        coco = self.coco[window.split]
        image_id = len(coco["images"]) + 1
        coco["images"].append(_image_record(image_id, file_name, window, raster_name))
        coco["annotations"].extend(_annotations(labels, image_id, len(coco["annotations"]) + 1))
        self.add(f"{window.split} tiles written", 1)
        self.add("labels whole in their tile", len(labels.boxes) - labels.clipped)
        self.add("labels cut by the tile edge, kept (clipped)", labels.clipped)
        self.add("craters cut by the tile edge, dropped (most of the rim outside)", labels.dropped_edge)
        self.add("craters centred on no-data, dropped", labels.dropped_nodata)


def _write_tiles(source, craters: CraterBoxes, windows: List[TileWindow], out_dir: str, settings: TileSettings,
                 collector: _Collector) -> np.ndarray:
    """Write every tile that holds enough data; returns which craters got a label somewhere."""
    raster_name = os.path.basename(source.path)
    stem = os.path.splitext(raster_name)[0]
    labelled = np.zeros(len(craters.boxes), bool)
    index = ColumnIndex(craters.boxes)
    for window in track(windows, desc="tiles", unit="tile"):
        image, valid = _tile_pixels(source, window)
        if valid.mean() < 1.0 - settings.max_nodata:
            collector.add(f"{window.split} tiles skipped (more than {settings.max_nodata:.0%} no-data)", 1)
            continue
        near = index.near(window.col_off, window.width)
        labels = label_tile(craters.boxes[near], window.col_off, window.row_off, window.width, window.height, valid)
        labelled[near[labels.index]] = True
        file_name = f"{stem}_{window.col_off}_{window.row_off}.png"
        ok, png = cv2.imencode(".png", image)
        if not ok:
            raise RuntimeError(f"could not encode tile {file_name} as PNG")
        _write_atomic(os.path.join(out_dir, SPLIT_FILES[window.split][0], file_name), png.tobytes())
        collector.add_tile(window, file_name, raster_name, labels)
    return labelled


def make_crater_tiles(raster: str, catalogue: str, out_dir: str,
                      settings: TileSettings = TileSettings()) -> Dict[str, int]:
    """Write the COCO folder `out_dir` from `raster` and `catalogue`; returns the counts it logs."""
    with open_georeferenced_raster(raster) as source:
        table = read_catalogue(catalogue)
        logger.info(describe(table, catalogue))
        geo = source.geo
        craters, counts = project_catalogue(table, geo, source.width, source.height)
        small = craters.diameter_px < settings.min_diameter_px
        plan = plan_split(source.width, source.height, settings.tile, settings.overlap, settings.val_fraction)
        logger.info(plan.reason)
        info = {"description": "crater tiles from a catalogue (yolox.crater_catalog.catalog_tiles)",
                "raster": os.path.basename(raster), "catalogue": os.path.basename(catalogue),
                "catalogue_columns": list(table.columns), "pixel_size_m": round(geo.metres_per_pixel(), 6),
                "settings": asdict(settings), "split_reason": plan.reason,
                **completeness_info(craters.diameter_km, craters.diameter_px, settings.min_diameter_px)}
        collector = _Collector(info)
        collector.counts.update({"catalogue rows skipped (empty or out of range)": table.rows_skipped, **counts,
                                 f"craters under --min-diameter-px {settings.min_diameter_px:g} (not labelled)":
                                     int(small.sum())})
        for folder, _ in SPLIT_FILES.values():
            os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
        os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
        labelled = _write_tiles(source, craters.subset(~small), plan.windows, out_dir, settings, collector)
    collector.add("craters labelled in no tile (between the splits, on skipped tiles, or cut by every tile)",
                  int((~labelled).sum()))
    for split, (_, json_name) in SPLIT_FILES.items():
        _write_atomic(os.path.join(out_dir, "annotations", json_name),
                      json.dumps(collector.coco[split]).encode("utf-8"))
    logger.info(f"crater tiles in {out_dir}:\n"
                + tabulate(list(collector.counts.items()), headers=["tiles and labels", "count"], tablefmt="github"))
    return collector.counts
