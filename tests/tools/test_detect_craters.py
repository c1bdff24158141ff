"""tools/detect_craters.py end to end with a real (randomly initialised) nano model on a small picture."""
import csv
import os

import cv2
import torch

from tests.tools.conftest import load_tool
from tests.crater_catalog.mosaics import MosaicConfig, render_mosaic
from yolox.exp import get_exp

EXP = os.path.join(os.path.dirname(__file__), "..", "..", "exps", "crater", "yolox_nano_crater.py")


def test_cli_writes_a_catalogue_with_a_real_nano(tmp_path):
    torch.manual_seed(0)
    exp = get_exp(EXP, None)
    exp.data_dir = str(tmp_path / "no_data")
    torch.save({"model": exp.get_model().state_dict()}, tmp_path / "nano.pth")
    cv2.imwrite(str(tmp_path / "field.png"), render_mosaic(MosaicConfig(width=400, height=300, seed=2)))
    load_tool("detect_craters").main([str(tmp_path / "field.png"), "-f", EXP, "-c", str(tmp_path / "nano.pth"), "--out", str(tmp_path / "out"),
          "--tile", "192", "--conf", "0.001", "--device", "cpu", "-b", "4", "data_dir", str(tmp_path / "no_data")])
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["craters.csv", "craters.diam", "craters.geojson", "overview.png", "parts", "run.json"]
    with open(out / "craters.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["x_px", "y_px", "diameter_px", "score", "fraction"]
    for row in rows:
        assert 0 <= float(row["x_px"]) <= 400 and 0 <= float(row["y_px"]) <= 300 and float(row["score"]) >= 0.001
    assert "pixels" in (out / "craters.diam").read_text()
