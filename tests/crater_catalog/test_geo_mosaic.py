"""Generated georeferenced mosaics: the crater list matches what was drawn, deterministic, no-data where asked."""
import csv

import numpy as np
import pytest

from tests.crater_catalog.geo_mosaics import DISC_FIELD, equirectangular, polar, require_geo

require_geo()

from tests.fixtures.geo_mosaic import GeoMosaicSpec, MosaicConfig, write_geo_mosaic  # noqa: E402


def read_csv(path):
    with open(path, newline="") as handle:
        return np.asarray([[float(v) for v in row.values()] for row in csv.DictReader(handle)])


def test_list_and_raster_agree_and_repeat(tmp_path):
    import rasterio

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    first, second = equirectangular(tmp_path / "a"), equirectangular(tmp_path / "b")
    assert np.array_equal(first.craters, second.craters)
    assert (tmp_path / "a" / "eqc.tif").read_bytes() == (tmp_path / "b" / "eqc.tif").read_bytes()
    listed = read_csv(tmp_path / "a" / "eqc.csv")
    assert np.allclose(listed, first.craters)
    assert np.all(np.abs(listed[:, 1] - 45.0) < 1.0) and np.all(np.abs(listed[:, 0] + 30.0) < 1.5)
    with rasterio.open(str(tmp_path / "a" / "eqc.tif")) as dataset:
        assert dataset.crs is not None and "eqc" in dataset.crs.to_proj4() and dataset.nodata == 0
        image = dataset.read(1)
    # each listed crater's centre pixel is drawn dark
    cx, cy = first.pixels[:, 0].astype(int), first.pixels[:, 1].astype(int)
    inside = (cx < image.shape[1]) & (cy < image.shape[0])
    assert np.all(image[cy[inside], cx[inside]] < 100)


def test_polar_has_nodata_outside_its_latitude_and_lists_only_craters_in_data(tmp_path):
    import rasterio

    mosaic = polar(tmp_path)
    with rasterio.open(str(tmp_path / "polar.tif")) as dataset:
        image = dataset.read(1)
        assert "stere" in dataset.crs.to_proj4()
    assert image[0, 0] == 0 and image[384, 384] != 0 and 0.05 < (image == 0).mean() < 0.6
    rim_south = mosaic.craters[:, 1] - np.degrees(mosaic.craters[:, 2] * 500 / 3396190.0)
    assert len(mosaic.craters) > 10 and np.all(rim_south >= 89.7)


def test_shaded_style_and_0_to_360_longitudes(tmp_path):
    cfg = MosaicConfig(seed=3, **dict(DISC_FIELD, style="shaded", width=300, height=300))
    mosaic = write_geo_mosaic(str(tmp_path / "s.tif"), str(tmp_path / "s.csv"), cfg,
                              GeoMosaicSpec(centre_lon=-100.0, centre_lat=-60.0), lon_360=True)
    listed = read_csv(tmp_path / "s.csv")
    assert np.all((listed[:, 0] > 250) & (listed[:, 0] < 270))
    assert np.allclose(listed[:, 0] - 360, mosaic.craters[:, 0])
    with pytest.raises(ValueError, match="equirectangular, polar"):
        write_geo_mosaic(str(tmp_path / "x.tif"), str(tmp_path / "x.csv"), cfg, GeoMosaicSpec(projection="mercator"))
