"""The scientist's whole loop on generated data, in both projections: a georeferenced mosaic and its crater
list in lon/lat, tiles from one region of it, a short fine-tuning, detection on a region held out from the
tiles, and the comparison with the list per diameter bin (tools/compare_catalogues.py --raster)."""
import csv
import json
import re

import numpy as np
import pytest

from tests.conftest import loguru_messages, shared_path
from tests.crater_catalog.geo_mosaics import LOOP_FIELD, crop_geotiff, equirectangular, polar, require_geo
from tests.crater.runs import NANO_EXP, crater_main
from tests.tools.conftest import load_tool

require_geo()

MOSAICS = {"equirectangular": equirectangular, "polar": polar}
STEMS = {"equirectangular": "eqc", "polar": "polar"}
# columns of the 768 px mosaic: tiles come from the first region, detection runs on the second; 64 px
# apart, so no crater (at most 46 px across, stretched) reaches both
TRAIN_REGION, HELD_OUT_REGION = (0, 448), (512, 256)
SIZE = "(128,128)"
TRAINING = ["--device", "cpu", "--fused-bn-act", "off", "-b", "8", "--time", "45s", "input_size", SIZE,
            "test_size", SIZE, "random_size", "(4,4)", "max_epoch", "30", "warmup_epochs", "1",
            "data_num_workers", "0"]
# overall recall measured over repeated runs of each projection is in docs/catalogues.md; the floor sits far
# below the lowest, so only a broken loop (projection, tiles, training or matching) fails it
RECALL_FLOOR = 0.6


def tiles_counts(messages) -> dict:
    """The count table make_crater_tiles logs, as {row: count}."""
    table = next(m for m in messages if m.startswith("crater tiles in "))
    return {key.strip(): int(value) for key, value in re.findall(r"^\| ([^|]+?)\s+\|\s+(\d+) \|$", table, re.M)}


@pytest.fixture(scope="module", params=sorted(MOSAICS))
def loop(request, tmp_path_factory):
    """Run the loop once per projection: (root, mosaic, tile counts, comparison report)."""
    weights = shared_path("fixtures", "real_nano", "yolox_nano_coco_unfolded.pth")
    root = tmp_path_factory.mktemp(request.param)
    stem = STEMS[request.param]
    mosaic = MOSAICS[request.param](root, field=LOOP_FIELD)
    crop_geotiff(root / f"{stem}.tif", root / "train.tif", *TRAIN_REGION)
    crop_geotiff(root / f"{stem}.tif", root / "held_out.tif", *HELD_OUT_REGION)
    with loguru_messages("INFO") as messages:
        load_tool("make_crater_tiles").main([str(root / "train.tif"), str(root / f"{stem}.csv"), "--out",
                                             str(root / "tiles"), "--tile", "128", "--overlap", "32"])
    crater_main(["-f", NANO_EXP, "--data-dir", str(root / "tiles"), "-c", str(weights), *TRAINING,
                 "output_dir", str(root / "run")])
    load_tool("detect_craters").main([str(root / "held_out.tif"), "-f", NANO_EXP, "--out", str(root / "found"),
                                      "-c", str(root / "run" / "yolox_nano_crater" / "best_ckpt.pth"),
                                      "--device", "cpu", "data_dir", str(root / "tiles"),
                                      "input_size", SIZE, "test_size", SIZE])
    load_tool("compare_catalogues").main([str(root / "found" / "craters.csv"), str(root / f"{stem}.csv"),
                                          "--raster", str(root / "held_out.tif"), "--json", str(root / "cmp.json")])
    return root, mosaic, tiles_counts(messages), json.loads((root / "cmp.json").read_text())


def held_out(mosaic) -> np.ndarray:
    """Which of the mosaic's craters are centred in the held-out region (from where they were placed)."""
    start, width = HELD_OUT_REGION
    return (mosaic.pixels[:, 0] >= start) & (mosaic.pixels[:, 0] < start + width)


def test_held_out_craters_are_in_no_tile(loop):
    root, mosaic, counts, _ = loop
    assert counts["craters outside the raster"] >= held_out(mosaic).sum() > 20
    for split in ("train", "val"):
        coco = json.loads((root / "tiles" / "annotations" / f"instances_{split}2017.json").read_text())
        windows = {image["id"]: image["window"] for image in coco["images"]}
        assert {image["raster"] for image in coco["images"]} == {"train.tif"}
        right_edges = [windows[a["image_id"]][0] + a["bbox"][0] + a["bbox"][2] for a in coco["annotations"]]
        assert coco["annotations"] and max(right_edges) <= TRAIN_REGION[1]


def test_catalogue_lies_in_the_held_out_raster(loop):
    import rasterio
    from pyproj import CRS, Transformer

    root, mosaic, _, _ = loop
    with open(root / "found" / "craters.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    lon, lat = (np.asarray([float(row[key]) for row in rows]) for key in ("lon", "lat"))
    crs = CRS.from_string(mosaic.crs)
    x, y = Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True).transform(lon, lat)
    with rasterio.open(str(root / "held_out.tif")) as dataset:
        left, bottom, right, top = dataset.bounds
    assert len(rows) > 10
    assert np.all((x >= left) & (x <= right) & (y >= bottom) & (y <= top))


def test_comparison_per_diameter_bin(loop):
    _, mosaic, _, report = loop
    truth_km = mosaic.craters[held_out(mosaic), 2]
    rows = report["by_diameter"]
    assert rows and sum(row["reference"] for row in rows) == len(truth_km) == report["overall"]["reference"]
    for row in rows:
        low, high = row["bin"]
        assert row["reference"] == np.sum((truth_km >= low) & (truth_km < high)), row
        for key in ("precision", "recall", "f1"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0, row
    assert report["overall"]["recall"] > RECALL_FLOOR
    largest = [row for row in rows if row["reference"]][-1]
    assert largest["f1"] is not None and largest["f1"] > 0, largest
