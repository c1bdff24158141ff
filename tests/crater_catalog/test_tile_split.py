"""Region split: deterministic, disjoint with a gap of one overlap, about the asked fraction, whole coverage."""
import itertools

import numpy as np
import pytest

from tests.crater_catalog.windows import split_counts, window_gap
from yolox.crater_catalog.tile_split import plan_split
from yolox.data.errors import DataError

SIZES = [(3000, 2200, 512, 64), (768, 768, 256, 32), (5000, 700, 512, 64), (700, 5000, 256, 16), (640, 1400, 256, 32),
         (600, 600, 256, 32)]


@pytest.mark.parametrize("width, height, tile, overlap", SIZES)
@pytest.mark.parametrize("val_fraction", [0.1, 0.2, 0.3, 0.5])
def test_train_and_val_tiles_keep_one_overlap_apart(width, height, tile, overlap, val_fraction):
    plan = plan_split(width, height, tile, overlap, val_fraction)
    train = [w for w in plan.windows if w.split == "train"]
    val = [w for w in plan.windows if w.split == "val"]
    assert train and val
    assert min(window_gap(a, b) for a, b in itertools.product(train, val)) >= overlap
    for w in plan.windows:
        assert 0 <= w.col_off and w.col_off + w.width <= width and 0 <= w.row_off and w.row_off + w.height <= height
        assert w.width <= tile and w.height <= tile


def test_deterministic_and_near_the_asked_fraction():
    first, second = plan_split(3000, 2200, 512, 64, 0.2), plan_split(3000, 2200, 512, 64, 0.2)
    assert first == second
    area = {s: sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1, r in first.regions if r == s) for s in ("train", "val")}
    assert 0.1 < area["val"] / (area["train"] + area["val"]) < 0.3
    assert "20% asked" in first.reason and "shuffle" in first.reason


def test_every_pixel_outside_the_gaps_is_tiled():
    width, height = 1800, 1300
    plan = plan_split(width, height, 256, 32, 0.25)
    covered = np.zeros((height, width), bool)
    for w in plan.windows:
        covered[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] = True
    in_regions = np.zeros_like(covered)
    for x0, y0, x1, y1, _ in plan.regions:
        in_regions[y0:y1, x0:x1] = True
    assert np.array_equal(covered, in_regions)
    assert in_regions.mean() > 0.9        # only the gap strips are left out


def test_no_validation_and_bad_fractions():
    plan = plan_split(1000, 1000, 256, 32, 0.0)
    assert split_counts(plan)[1] == 0 and split_counts(plan)[0] > 0
    with pytest.raises(DataError, match="--val-fraction"):
        plan_split(1000, 1000, 256, 32, 0.8)
    with pytest.raises(DataError, match="too small for a train/validation split"):
        plan_split(80, 60, 256, 32, 0.2)


@pytest.mark.parametrize("width, height", [(600, 600), (300, 200), (200, 600)])
def test_small_rasters_are_cut_in_two_across_the_longer_side(width, height):
    plan = plan_split(width, height, 256, 32, 0.2)
    train, val = ([w for w in plan.windows if w.split == s] for s in ("train", "val"))
    assert train and val and len(plan.regions) == 2
    assert min(window_gap(a, b) for a, b in itertools.product(train, val)) >= 32
    assert "cut in two" in plan.reason
