"""yolox.crater.report: the closing lines and run_summary.json, the plots without matplotlib."""
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import loguru_messages
from yolox.crater.report import RUN_SUMMARY_FILE, report_run, save_plots
from yolox.utils.eval_history import append_eval


def test_report_names_the_best_and_final_checkpoints_and_writes_the_summary(tmp_path, capsys):
    for epoch, ap50, best in ((1, 0.4, True), (2, 0.6, True), (3, 0.5, False)):
        append_eval(str(tmp_path), {"epoch": epoch, "AP50": ap50, "AP50:95": ap50 / 2, "best": best,
                                    "samples_seen": 100 * epoch, "train_seconds": 10.0 * epoch})
    summary = report_run(str(tmp_path), max_epoch=3, batch=8, wall_seconds=40.0)
    assert json.loads((tmp_path / RUN_SUMMARY_FILE).read_text()) == summary
    assert (summary["best"]["epoch"], summary["final"]["epoch"]) == (2, 3)
    assert summary["best"]["ckpt"].endswith("best_ckpt.pth") and summary["img_per_s"] == 10.0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("best AP50 0.600, AP50:95 0.300 at epoch 2")
    assert printed[1].startswith("final AP50 0.500, AP50:95 0.250 at epoch 3")


def test_no_evaluation_means_no_summary(tmp_path):
    with loguru_messages("WARNING") as warnings:
        assert report_run(str(tmp_path), max_epoch=1, batch=1, wall_seconds=1.0) is None
    assert warnings and "no evaluation recorded" in warnings[0]
    assert not (tmp_path / RUN_SUMMARY_FILE).exists()


def test_plots_without_matplotlib_skip_the_curves_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now raises ImportError
    with loguru_messages("WARNING") as warnings:
        written = save_plots(str(tmp_path), "demo", [{"iteration": 1, "total_loss": 3.0}], [], {},
                             SimpleNamespace(ids=[]))
    assert written == []
    assert warnings == ['curves.png skipped: the training-curves PNG needs matplotlib, which is not installed: '
                        'pip install matplotlib  (or pip install -e ".[plots]")']


class OneImageSet:
    """The evaluation dataset's face that save_plots reads: ids, COCO annotations, images."""

    ids = [7]

    def __init__(self):
        self.coco = SimpleNamespace(getAnnIds=lambda imgIds, iscrowd: [1],
                                    loadAnns=lambda ids: [{"bbox": [2.0, 3.0, 10.0, 8.0]}])

    def load_image(self, index):
        return np.full((32, 48, 3), 90, np.uint8)


def test_prediction_grid_draws_boxes_far_outside_the_image(tmp_path):
    pytest.importorskip("matplotlib")
    outputs = {7: {"bboxes": [[-5e12, 4.0, 3e15, 20.0], [1.0, 1.0, 9.0, 9.0]], "scores": [0.9, 0.8]}}
    written = save_plots(str(tmp_path), "run", [{"iteration": 1, "total_loss": 3.0}],
                         [{"epoch": 1, "AP50": 0.1, "AP50:95": 0.05}], outputs, OneImageSet())
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["curves.png", "predictions.png"]
    assert (tmp_path / "predictions.png").stat().st_size > 1000
