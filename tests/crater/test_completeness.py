"""The completeness record (the tile maker's) and the warning when training scales show the model its unlabelled
craters."""
import numpy as np
import pytest

from yolox.crater.completeness import VISIBLE_PX, completeness_warning, visible_unlabelled_fraction
from yolox.crater_catalog.catalog_tiles import completeness_info


def info(px: float, km: float = 1.0, min_px: float = 4.0) -> dict:
    return {"catalogue_min_diameter_km": km, "catalogue_min_diameter_px": px, "min_diameter_px": min_px}


def test_info_records_the_smallest_crater():
    record = completeness_info(np.array([3.0, 1.2, 5.0]), np.array([30.0, 12.0, 50.0]), 4)
    assert record == {"catalogue_min_diameter_km": 1.2, "catalogue_min_diameter_px": 12.0, "min_diameter_px": 4.0}
    assert completeness_info(np.zeros(0), np.zeros(0), 4)["catalogue_min_diameter_px"] is None


def test_fraction_grows_with_scale_and_vanishes_for_complete_catalogues():
    fractions = [visible_unlabelled_fraction(12.0, s) for s in (0.25, 0.5, 0.7, 1.0, 2.0)]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0      # from 16 px: none; from 2 px: all
    assert all(a < b for a, b in zip(fractions, fractions[1:]))
    assert visible_unlabelled_fraction(2.0, 10.0) == 0.0       # nothing resolved is unlabelled


def test_warning_fires_when_most_unlabelled_craters_are_visible():
    assert completeness_warning(info(12.0), (0.5, 0.8)) is None
    message = completeness_warning(info(12.0), (1.5, 3.0))
    assert message is not None and "12.0 px" in message and "background" in message
    # the suggested largest scale keeps the warning away
    safe = float(message.split("keep the training scale below ")[1].split(",")[0])
    assert completeness_warning(info(12.0), (safe * 0.9, safe * 0.9)) is None
    assert completeness_warning(info(12.0), (safe * 1.1, safe * 1.1)) is not None


def test_min_diameter_px_raises_the_labelled_limit_and_missing_record_is_silent():
    assert completeness_warning(info(3.0, min_px=4.0), (1.5, 1.5)) is None
    assert completeness_warning(info(3.0, min_px=16.0), (1.5, 1.5)) is not None
    assert completeness_warning({"description": "old set"}, (1.0, 2.0)) is None
    with pytest.raises(ValueError):
        completeness_warning(info(12.0), (0.0, 1.0))
    assert VISIBLE_PX == 4.0
