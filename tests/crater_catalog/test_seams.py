"""Tiled detection equals detection on the whole image: no seam duplicates, none lost at seams."""
from typing import Dict, Tuple

import cv2
import numpy as np
import pytest

from tests.crater_catalog.fake_model import DiscFinder
from tests.crater_catalog.mosaics import MosaicConfig, place_mosaic_craters, render_mosaic
from yolox.crater_catalog.compare import compare_catalogues
from yolox.crater_catalog.detect import DetectionSettings, TileDetector, combine_chunks, plan_source_chunks, run_chunks
from yolox.crater_catalog.merge import Craters
from yolox.crater_catalog.parts import ChunkResult
from yolox.crater_catalog.sources import ImageSource, OpenCVSource, open_source
from yolox.utils.device import build_policy

TILE, OVERLAP = 256, 80


def detect_source(source: ImageSource, detector: TileDetector, settings: DetectionSettings) -> Tuple[Craters, int]:
    """All craters of `source` (merged across tiles and scales) and the number of tiles, nothing recorded."""
    chunks = plan_source_chunks(source, settings)
    results: Dict[int, ChunkResult] = {}
    run_chunks(source, detector, settings, chunks, lambda chunk, result: results.__setitem__(chunk.index, result),
               lambda chunk, error: None, "tiles")
    return combine_chunks([results[i] for i in sorted(results)], settings), sum(len(c.tiles) for c in chunks)


@pytest.fixture(scope="module")
def disc_mosaic(tmp_path_factory):
    cfg = MosaicConfig(width=1100, height=900, seed=3, style="discs", min_radius=4, max_radius=30,
                       craters_per_megapixel=250, max_overlap=1.0, min_gap=4, big_craters=2, big_radius=(160, 200))
    craters = place_mosaic_craters(cfg)
    path = str(tmp_path_factory.mktemp("mosaic") / "discs.png")
    cv2.imwrite(path, render_mosaic(cfg, craters))
    return path, craters


def detector():
    return TileDetector(DiscFinder(), build_policy("cpu"), num_classes=1, conf=0.5, nms=0.5)


def whole_image(path):
    """The same stand-in on the whole picture in one piece: the reference the tiles must reproduce."""
    with OpenCVSource(path) as source:
        side = 32 * -(-max(source.width, source.height) // 32)
        return detect_source(source, detector(), DetectionSettings(tile=side, overlap=0))[0]


def test_mosaic_has_craters_cut_by_tile_edges(disc_mosaic):
    _, craters = disc_mosaic
    stride = TILE - OVERLAP
    crossing = [(x, r) for x, _, r in craters if int((x - r) // stride) != int((x + r) // stride)]
    assert len(crossing) > 10
    assert (craters[:, 2] * 2 > TILE).sum() == 2


def test_tiled_equals_whole_image(disc_mosaic):
    path, craters = disc_mosaic
    reference = whole_image(path)
    small = reference.select(reference.diameter < OVERLAP - 4)
    with OpenCVSource(path) as source:
        tiled, tiles = detect_source(source, detector(), DetectionSettings(tile=TILE, overlap=OVERLAP, batch_size=4))
    assert tiles > 16
    # every tiled crater is one of the whole image's (one to one: no seam duplicates, no half craters) ...
    assert compare_catalogues(tiled, reference)["overall"]["precision"] == 1.0
    # ... and every crater the overlap is made for is found, at exactly the whole image's position and size
    found = tiled.select(tiled.diameter < OVERLAP - 4)
    assert compare_catalogues(found, small)["overall"]["recall"] == 1.0 and len(found) == len(small)
    order_t, order_s = np.lexsort((found.y, found.x)), np.lexsort((small.y, small.x))
    np.testing.assert_allclose(found.x[order_t], small.x[order_s], atol=1e-6)
    np.testing.assert_allclose(found.diameter[order_t], small.diameter[order_s], atol=1e-6)


def test_extra_scale_finds_craters_larger_than_a_tile(disc_mosaic):
    path, craters = disc_mosaic
    reference = whole_image(path)
    with OpenCVSource(path) as source:
        tiled, _ = detect_source(source, detector(), DetectionSettings(tile=TILE, overlap=OVERLAP, scales=(1.0, 0.25)))
    big_truth = reference.select(reference.diameter > TILE)
    report = compare_catalogues(tiled.select(tiled.diameter > TILE), big_truth)
    assert len(big_truth) == 2 and report["overall"]["recall"] == 1.0 and report["overall"]["precision"] == 1.0
    assert compare_catalogues(tiled, reference)["overall"]["f1"] == 1.0


def test_enlarged_scale_finds_the_small_craters_in_place(disc_mosaic):
    path, _ = disc_mosaic
    reference = whole_image(path)
    limit = OVERLAP / 2 - 4  # held whole by a tile at scale 2
    with OpenCVSource(path) as source:
        tiled, tiles = detect_source(source, detector(), DetectionSettings(tile=TILE, overlap=OVERLAP, scales=(2.0,)))
        _, tiles_at_1 = detect_source(source, detector(), DetectionSettings(tile=TILE, overlap=OVERLAP))
    assert tiles > 2 * tiles_at_1   # about four times the tiles: the enlarged image has four times the pixels
    assert compare_catalogues(tiled, reference.select(reference.diameter < limit))["overall"]["recall"] == 1.0
    report = compare_catalogues(tiled.select(tiled.diameter < limit), reference)
    assert report["overall"]["precision"] == 1.0
    # sizes within a source pixel (the stand-in thresholds the edge that enlargement blurs) and centres close
    assert report["matched_errors"]["diameter_abs_median"] <= 1.0
    assert report["matched_errors"]["centre_offset_rel_median"] < 0.1


def test_scales_outside_the_range_are_refused():
    with pytest.raises(ValueError, match="scales"):
        DetectionSettings(tile=TILE, overlap=OVERLAP, scales=(8.0,))


@pytest.mark.parametrize("suffix", [".png", ".tif"])  # OpenCV and (when installed) rasterio
def test_enlarging_read_is_bilinear_not_repeated_pixels(tmp_path, suffix):
    path = str(tmp_path / f"ramp{suffix}")
    cv2.imwrite(path, np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1)))
    with open_source(path) as source:
        row = source.read_bgr(0, 0, 16, 16, 32, 32)[8, :, 0].astype(int)
    assert len(set(row[2:-2].tolist())) > 16   # repeated pixels would give the 16 source values only


def test_duplicates_merge_but_a_crater_on_a_crater_floor_stays():
    craters = Craters(np.array([100.0, 101.0, 100.0]), np.array([50.0, 50.5, 50.0]), np.array([20.0, 21.0, 80.0]),
                      np.array([0.9, 0.6, 0.8]))
    from yolox.crater_catalog.merge import merge_duplicates

    merged = merge_duplicates(craters)
    assert len(merged) == 2
    small = merged.select(merged.diameter < 50)
    assert small.score[0] == pytest.approx(0.9) and 100.0 < small.x[0] < 101.0
