"""One-to-one matching by centre distance and diameter ratio; P/R/F1 overall and by bin."""
import numpy as np
import pytest

from yolox.crater_catalog.compare import MatchRule, compare_catalogues, format_report
from yolox.crater_catalog.merge import Craters


def craters(rows):
    table = np.asarray(rows, float)
    return Craters(table[:, 0], table[:, 1], table[:, 2], np.ones(len(table)))


def test_rule_bounds_and_one_to_one():
    reference = craters([[0, 0, 10], [100, 0, 40], [300, 0, 20]])
    detected = craters([[1, 0, 10], [2, 0, 10], [110, 0, 41], [300, 0, 40]])   # a duplicate, a too-large one
    report = compare_catalogues(detected, reference, MatchRule(0.5, 1.5), bins=[8, 16, 32, 64])
    overall = report["overall"]
    assert (overall["matched_reference"], overall["detected"], overall["reference"]) == (2, 4, 3)
    assert overall["precision"] == pytest.approx(0.5) and overall["recall"] == pytest.approx(2 / 3)
    assert [b["reference"] for b in report["by_diameter"]] == [1, 1, 1]
    assert report["by_diameter"][0]["precision"] == pytest.approx(0.5)
    text = format_report(report)
    assert "centre distance < 0.5 x reference diameter" in text and "diameter ratio < 1.5" in text


def test_closer_pair_wins():
    reference = craters([[0, 0, 20]])
    detected = craters([[8, 0, 20], [1, 0, 20]])
    report = compare_catalogues(detected, reference)
    assert report["matched_errors"]["centre_offset_rel_median"] == pytest.approx(1 / 20)
