"""Tiles cover the image with the asked overlap; inner edges are flagged, image borders are not."""
import pytest

from yolox.crater_catalog.tiling import plan_tiles, tile_starts


@pytest.mark.parametrize("length, tile, overlap", [(1000, 256, 64), (256, 256, 10), (100, 256, 10), (1001, 320, 97)])
def test_starts_cover_with_overlap(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and min(length, starts[-1] + tile) == length
    for left, right in zip(starts, starts[1:]):
        assert left + tile - right >= overlap


def test_overlap_not_below_tile():
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(1000, 256, 256)


def test_reduced_scale_tiles_map_to_full_resolution():
    tiles = plan_tiles(1000, 600, 256, 32, scale=0.5)
    assert all(t.out_width <= 256 for t in tiles)
    assert max(t.x0 + t.width for t in tiles) == 1000 and max(t.y0 + t.height for t in tiles) == 600
    first = tiles[0]
    assert (first.inner_left, first.inner_top, first.inner_right) == (False, False, True)
    assert first.source_per_model_px == pytest.approx(2.0)


def test_enlarged_scale_tiles_read_half_a_tile_of_source():
    tiles = plan_tiles(300, 200, 128, 16, scale=2.0)
    assert max(t.x0 + t.width for t in tiles) == 300 and max(t.y0 + t.height for t in tiles) == 200
    assert tiles[0].width == 64 and tiles[0].out_width == 128
    assert all(t.source_per_model_px == pytest.approx(0.5, abs=0.02) for t in tiles)
