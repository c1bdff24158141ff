"""Tiles from generated georeferenced mosaics: boxes match the drawn craters in both projections, the splits
are disjoint, counts are right, and the COCO folder goes through the project's loader and dataset check."""
import csv
import math

import cv2
import numpy as np
import pytest

from tests.crater_catalog.geo_mosaics import (OVERLAP, TILE, equirectangular, iou, labelled_tiles, load_split, polar,
                                      rendered_boxes, require_geo)

require_geo()

from tests.crater_catalog.windows import window_gap  # noqa: E402
from yolox.crater_catalog.catalog_tiles import TileSettings, make_crater_tiles  # noqa: E402
from yolox.crater_catalog.tile_split import TileWindow  # noqa: E402
from yolox.data.errors import DataError  # noqa: E402

SETTINGS = TileSettings(tile=TILE, overlap=OVERLAP, val_fraction=0.2)


def bboxes(annotations) -> np.ndarray:
    return np.asarray([a["bbox"] for a in annotations], float).reshape(-1, 4)


@pytest.fixture(scope="module", params=["equirectangular", "polar"])
def tiled(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    mosaic = (equirectangular if request.param == "equirectangular" else polar)(root)
    stem = "eqc" if request.param == "equirectangular" else "polar"
    counts = make_crater_tiles(str(root / f"{stem}.tif"), str(root / f"{stem}.csv"), str(root / "out"), SETTINGS)
    return root, stem, mosaic, counts


def test_tile_boxes_match_the_drawn_craters(tiled):
    root, _, _, _ = tiled
    matched = 0
    for split, image, labels in labelled_tiles(root / "out"):
        tile = cv2.imread(str(root / "out" / f"{split}2017" / image["file_name"]), cv2.IMREAD_GRAYSCALE)
        drawn = rendered_boxes(tile)
        if len(labels):
            best = iou(labels, drawn).max(axis=1) if len(drawn) else np.zeros(len(labels))
            assert best.min() > 0.8, (image["file_name"], labels[best <= 0.8])
        # every crater drawn whole inside the tile is labelled
        whole = drawn[(drawn[:, 0] > 0) & (drawn[:, 1] > 0) & (drawn[:, 2] < tile.shape[1])
                      & (drawn[:, 3] < tile.shape[0])]
        if len(whole):
            assert len(labels) and iou(whole, labels).max(axis=1).min() > 0.8, image["file_name"]
        matched += len(labels)
    assert matched > 30


def test_naive_square_boxes_would_fail_on_the_equirectangular_mosaic(tmp_path):
    """The check above has teeth: at 45 N a box of D / pixel size on each side misses the drawn crater."""
    import rasterio

    mosaic = equirectangular(tmp_path)
    with rasterio.open(str(tmp_path / "eqc.tif")) as dataset:
        image = dataset.read(1)
    drawn = rendered_boxes(image)
    cx, cy, r = mosaic.pixels.T
    naive = np.stack([cx - r, cy - r, cx + r, cy + r], axis=1)
    inner = (naive[:, 0] > 40) & (naive[:, 2] < image.shape[1] - 40)
    assert np.median(iou(naive[inner], drawn).max(axis=1)) < 0.8
    widths, heights = drawn[:, 2] - drawn[:, 0], drawn[:, 3] - drawn[:, 1]
    big = heights > 20
    assert np.median(widths[big] / heights[big]) == pytest.approx(math.sqrt(2), rel=0.1)


def test_image_records_carry_window_and_raster(tiled):
    root, stem, _, _ = tiled
    import rasterio

    with rasterio.open(str(root / f"{stem}.tif")) as dataset:
        for split, image, _ in labelled_tiles(root / "out")[:6]:
            col, row, width, height = image["window"]
            assert image["raster"] == f"{stem}.tif" and (width, height) == (image["width"], image["height"])
            tile = cv2.imread(str(root / "out" / f"{split}2017" / image["file_name"]), cv2.IMREAD_GRAYSCALE)
            raw = dataset.read(1, window=rasterio.windows.Window(col, row, width, height))
            valid = raw != 0
            assert np.array_equal(tile[valid], raw[valid])      # 8-bit data passes unchanged


def test_splits_are_disjoint_regions_with_a_gap(tiled):
    root, _, mosaic, _ = tiled
    windows = {split: [TileWindow(*image["window"], split) for s, image, _ in labelled_tiles(root / "out")
                       if s == split] for split in ("train", "val")}
    assert windows["train"] and windows["val"]
    assert min(window_gap(a, b) for a in windows["train"] for b in windows["val"]) >= OVERLAP
    cx, cy = mosaic.pixels[:, 0], mosaic.pixels[:, 1]

    def covered(split):
        return np.any([(cx >= w.col_off) & (cx < w.col_off + w.width) & (cy >= w.row_off) & (cy < w.row_off + w.height)
                       for w in windows[split]], axis=0)

    assert not np.any(covered("train") & covered("val"))
    info = load_split(root / "out", "train")["info"]
    assert "no crater" in info["split_reason"] or "same crater" in info["split_reason"]


def test_nodata_tiles_are_skipped_and_counted(tiled):
    root, stem, _, counts = tiled
    import rasterio

    written = {tuple(image["window"]) for _, image, _ in labelled_tiles(root / "out")}
    with rasterio.open(str(root / f"{stem}.tif")) as dataset:
        data = dataset.read(1) != 0
    from yolox.crater_catalog.tile_split import plan_split

    planned = plan_split(data.shape[1], data.shape[0], TILE, OVERLAP, 0.2).windows
    mostly_empty = [w for w in planned
                    if data[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width].mean() < 0.5]
    skipped = sum(v for k, v in counts.items() if " tiles skipped " in k)
    assert skipped == len(mostly_empty) == len(planned) - len(written)
    assert (skipped > 0) == (stem == "polar")


def test_clipped_and_dropped_counts_add_up(tiled):
    root, _, _, counts = tiled
    labels = sum(len(boxes) for _, _, boxes in labelled_tiles(root / "out"))
    assert labels == counts["labels whole in their tile"] + counts["labels cut by the tile edge, kept (clipped)"]
    assert counts["labels cut by the tile edge, kept (clipped)"] > 0
    assert counts["craters cut by the tile edge, dropped (most of the rim outside)"] > 0


def test_completeness_is_recorded(tiled):
    root, _, mosaic, _ = tiled
    info = load_split(root / "out", "val")["info"]
    assert info["catalogue_min_diameter_km"] == pytest.approx(mosaic.craters[:, 2].min(), rel=1e-5)
    assert info["min_diameter_px"] == 4.0
    smallest_px = 2 * mosaic.pixels[np.argmin(mosaic.craters[:, 2]), 2]
    assert 0.99 * smallest_px <= info["catalogue_min_diameter_px"] <= 1.5 * smallest_px


def test_coco_folder_loads_and_passes_the_dataset_check(tiled):
    from yolox.data.datasets.dataset_check import check_split
    from yolox.data.datasets.detection_formats import load_split_as_coco

    root, _, _, counts = tiled
    for split in ("train", "val"):
        data, images_dir = load_split_as_coco(str(root / "out"), split)
        assert data["categories"] == [{"id": 1, "name": "crater", "supercategory": "crater"}]
        check = check_split(str(root / "out"), split)
        assert check.images_ok == check.images_total == counts[f"{split} tiles written"]
        assert check.boxes_dropped == 0 and check.boxes_clipped == 0


def test_longitude_conventions_and_aliases_give_the_same_tiles(tmp_path):
    equirectangular(tmp_path)
    make_crater_tiles(str(tmp_path / "eqc.tif"), str(tmp_path / "eqc.csv"), str(tmp_path / "base"), SETTINGS)
    with open(tmp_path / "eqc.csv", newline="") as handle:
        rows = [[float(v) for v in row.values()] for row in csv.DictReader(handle)]
    variants = {
        "robbins_2019.csv": (",", ["CRATER_ID", "LAT_CIRC_IMG", "LON_CIRC_IMG", "DIAM_CIRC_IMG"],
                             [["03-1-000001", lat, lon % 360, d] for lon, lat, d in rows]),
        "robbins_hynek_2012.tsv": ("\t", ["CRATER_ID", "LATITUDE_CIRCLE_IMAGE", "LONGITUDE_CIRCLE_IMAGE",
                                          "DIAMETER_CIRCLE_IMAGE"],
                                   [["01-000001", lat, lon, d] for lon, lat, d in rows]),
        "head_2010.csv": (",", ["Lon", "Lat", "Diam_km"], [[lon, lat, d] for lon, lat, d in rows]),
    }
    assert all(lon < 0 for lon, _, _ in rows)     # so 0..360 and -180..180 differ
    base = load_split(tmp_path / "base", "train")["annotations"]
    for name, (delimiter, header, table) in variants.items():
        with open(tmp_path / name, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter=delimiter)
            writer.writerow(header)
            writer.writerows(table)
        make_crater_tiles(str(tmp_path / "eqc.tif"), str(tmp_path / name), str(tmp_path / name[:-4]), SETTINGS)
        other = load_split(tmp_path / name[:-4], "train")["annotations"]
        assert np.allclose(bboxes(other), bboxes(base), atol=0.02), name


def test_map_coordinates_in_the_raster_crs_give_the_same_tiles(tmp_path):
    from pyproj import CRS, Transformer

    mosaic = equirectangular(tmp_path)
    crs = CRS.from_string(mosaic.crs)
    to_map = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    x, y = to_map.transform(mosaic.craters[:, 0], mosaic.craters[:, 1])
    with open(tmp_path / "map.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["x_map", "y_map", "diameter_m"])
        writer.writerows(zip(x, y, mosaic.craters[:, 2] * 1000))
    make_crater_tiles(str(tmp_path / "eqc.tif"), str(tmp_path / "eqc.csv"), str(tmp_path / "base"), SETTINGS)
    make_crater_tiles(str(tmp_path / "eqc.tif"), str(tmp_path / "map.csv"), str(tmp_path / "map"), SETTINGS)
    base, other = (load_split(tmp_path / name, "val")["annotations"] for name in ("base", "map"))
    assert np.allclose(bboxes(other), bboxes(base), atol=0.02)


def test_raster_without_crs_is_a_one_line_error(tmp_path):
    import rasterio

    with rasterio.open(str(tmp_path / "plain.tif"), "w", driver="GTiff", width=64, height=64, count=1,
                       dtype="uint8") as dst:
        dst.write(np.zeros((1, 64, 64), np.uint8))
    (tmp_path / "c.csv").write_text("lon,lat,diameter_km\n1,2,3\n")
    with pytest.raises(DataError, match=r"plain\.tif has no coordinate reference system"):
        make_crater_tiles(str(tmp_path / "plain.tif"), str(tmp_path / "c.csv"), str(tmp_path / "out"), SETTINGS)


def test_16_bit_rasters_use_the_whole_image_stretch(tmp_path):
    import rasterio

    from yolox.crater_catalog.sources import RasterioSource

    equirectangular(tmp_path)
    with rasterio.open(str(tmp_path / "eqc.tif")) as src:
        profile, data = src.profile, src.read(1)
    profile.update(dtype="uint16")
    with rasterio.open(str(tmp_path / "eqc16.tif"), "w", **profile) as dst:
        dst.write((data.astype(np.uint16) * 40 + 1000 * (data > 0))[None])
    make_crater_tiles(str(tmp_path / "eqc16.tif"), str(tmp_path / "eqc.csv"), str(tmp_path / "out"), SETTINGS)
    with RasterioSource(str(tmp_path / "eqc16.tif")) as source:
        for split, image, _ in labelled_tiles(tmp_path / "out")[:3]:
            tile = cv2.imread(str(tmp_path / "out" / f"{split}2017" / image["file_name"]), cv2.IMREAD_UNCHANGED)
            assert tile.dtype == np.uint8 and tile.ndim == 2
            assert np.array_equal(tile, source.read_bgr(*image["window"])[:, :, 0])
            assert tile.max() - tile.min() > 100
