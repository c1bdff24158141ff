"""Generated georeferenced mosaics for the catalogue-to-tiles tests, and how to find their rendered craters."""
import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
import pytest

GEO_REASON = "the geo extra (pip install -e '.[geo]') is not installed"

# flat dark discs, far enough apart (1.5 x the sum of the radii) that even stretched 1.5x they never touch
DISC_FIELD = dict(width=768, height=768, style="discs", min_radius=5, max_radius=22, craters_per_megapixel=220,
                  max_overlap=1.5, min_gap=4, block=256)
# denser and smaller, for the whole loop: enough craters in a held-out third of the mosaic to measure recall
LOOP_FIELD = dict(DISC_FIELD, max_radius=16, craters_per_megapixel=600)
TILE, OVERLAP = 256, 32


def require_geo() -> None:
    pytest.importorskip("rasterio", reason=GEO_REASON)
    pytest.importorskip("pyproj", reason=GEO_REASON)


def equirectangular(root: Path, seed: int = 1, field: dict = DISC_FIELD):
    """An equirectangular mosaic centred at 45 N, 30 W (craters 1.41x wider than tall) and its crater list."""
    from tests.fixtures.geo_mosaic import GeoMosaicSpec, MosaicConfig, write_geo_mosaic

    return write_geo_mosaic(str(root / "eqc.tif"), str(root / "eqc.csv"), MosaicConfig(seed=seed, **field),
                            GeoMosaicSpec(projection="equirectangular", centre_lat=45.0, centre_lon=-30.0))


def polar(root: Path, seed: int = 2, field: dict = DISC_FIELD):
    """A north polar stereographic mosaic around the pole, no data south of 89.7 N (its corners)."""
    from tests.fixtures.geo_mosaic import GeoMosaicSpec, MosaicConfig, write_geo_mosaic

    return write_geo_mosaic(str(root / "polar.tif"), str(root / "polar.csv"), MosaicConfig(seed=seed, **field),
                            GeoMosaicSpec(projection="polar", centre_lat=90.0, centre_lon=0.0, pixel_size_m=50.0,
                                          nodata_below_lat=89.7))


def crop_geotiff(source: Path, target: Path, col_off: int, width: int) -> None:
    """Write columns [col_off, col_off + width) of a GeoTIFF as a GeoTIFF of their own (its transform moved)."""
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(str(source)) as src:
        window = Window(col_off, 0, width, src.height)
        profile = dict(src.profile, width=width, transform=src.window_transform(window))
        with rasterio.open(str(target), "w", **profile) as dst:
            dst.write(src.read(window=window))


def load_split(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"instances_{split}2017.json").read_text())


def rendered_boxes(tile: np.ndarray) -> np.ndarray:
    """[k, 4] (x0, y0, x1, y1) boxes of the dark discs in a tile (the craters as drawn)."""
    from yolox.synthetic.mosaic import DISC_BACKGROUND, DISC_VALUE

    dark = ((tile > 0) & (tile < (DISC_VALUE + DISC_BACKGROUND) / 2)).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(dark, connectivity=8)
    x, y, w, h = (stats[1:, i].astype(float) for i in range(4))
    return np.stack([x, y, x + w, y + h], axis=1)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] IoU of x0, y0, x1, y1 boxes."""
    x0, y0 = np.maximum(a[:, None, 0], b[None, :, 0]), np.maximum(a[:, None, 1], b[None, :, 1])
    x1, y1 = np.minimum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def labelled_tiles(out: Path) -> List[Tuple[str, dict, np.ndarray]]:
    """(split, image record, [k, 4] x0 y0 x1 y1 label boxes) of every tile written."""
    tiles = []
    for split in ("train", "val"):
        data = load_split(out, split)
        boxes: Dict[int, list] = {image["id"]: [] for image in data["images"]}
        for ann in data["annotations"]:
            x, y, w, h = ann["bbox"]
            boxes[ann["image_id"]].append([x, y, x + w, y + h])
        tiles.extend((split, image, np.asarray(boxes[image["id"]], float).reshape(-1, 4)) for image in data["images"])
    return tiles
