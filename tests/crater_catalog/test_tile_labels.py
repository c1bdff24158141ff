"""Labels of one tile: whole, clipped (most inside), dropped (most outside), dropped on no-data."""
import numpy as np

from yolox.crater_catalog.tile_labels import ColumnIndex, label_tile


def test_clip_drop_and_nodata_rules():
    boxes = np.array([
        [110, 110, 130, 130],    # whole inside the window (100, 100, 200, 200)
        [90, 150, 110, 170],     # half inside: not most, dropped
        [94, 120, 114, 140],     # 70% inside: clipped, kept
        [190, 190, 230, 230],    # 1/16 inside: dropped
        [150, 150, 160, 160],    # inside, centre on no-data
        [300, 300, 310, 310],    # elsewhere
    ], float)
    valid = np.ones((100, 100), bool)
    valid[50:60, 50:60] = False
    labels = label_tile(boxes, 100, 100, 100, 100, valid)
    assert labels.index.tolist() == [0, 2]
    assert np.allclose(labels.boxes, [[10, 10, 20, 20], [0, 20, 14, 20]])
    assert (labels.clipped, labels.dropped_edge, labels.dropped_nodata) == (1, 2, 1)
    without_mask = label_tile(boxes, 100, 100, 100, 100)
    assert without_mask.index.tolist() == [0, 2, 4] and without_mask.dropped_nodata == 0


def test_column_index_finds_every_crater_that_reaches_a_window():
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-50, 1000, 500)
    w = rng.uniform(2, 60, 500)
    boxes = np.stack([x0, np.zeros(500), x0 + w, w], axis=1)
    index = ColumnIndex(boxes)
    for col_off in range(0, 1000, 97):
        near = set(index.near(col_off, 128).tolist())
        reaching = set(np.flatnonzero((boxes[:, 2] > col_off) & (boxes[:, 0] < col_off + 128)).tolist())
        assert reaching <= near
    assert ColumnIndex(np.zeros((0, 4))).near(0, 10).size == 0
