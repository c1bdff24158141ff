"""yolox/utils/plots.py: matplotlib curves (integer epoch ticks, legends), the missing-matplotlib hint, the grid."""
import importlib.util
import sys

import cv2
import numpy as np
import pytest

from yolox.utils.optional import MissingExtra
from yolox.utils.plots import _plot_series, history_to_series, save_prediction_grid, save_training_curves

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib is the plots extra: pip install -e '.[plots]'")


def ap_panel(epochs):
    from matplotlib.figure import Figure

    axes = Figure().subplots()
    series = {"AP50": (epochs, [0.1 * e for e in epochs]), "AP50:95": (epochs, [0.05 * e for e in epochs])}
    _plot_series(axes, series, "validation AP", "epoch", "AP")
    axes.figure.canvas.draw()
    return axes


@needs_matplotlib
@pytest.mark.parametrize("epochs", [[1], [3], [1, 2], list(range(2, 37, 2)), list(range(1, 301, 10))])
def test_epoch_ticks_are_whole_numbers(epochs):
    axes = ap_panel(epochs)
    low, high = axes.get_xlim()
    visible = [tick for tick in axes.get_xticks() if low <= tick <= high]
    assert len(visible) >= 2
    assert all(float(tick).is_integer() for tick in visible), visible


@needs_matplotlib
def test_panel_has_title_labels_and_a_legend_entry_per_series():
    axes = ap_panel([2, 4, 6])
    assert axes.get_title() == "validation AP"
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("epoch", "AP")
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["AP50", "AP50:95"]


@needs_matplotlib
def test_curves_png_is_written_and_drawn(tmp_path):
    rows = [{"iteration": i, "total_loss": 10.0 / i, "iou_loss": 3.0 / i} for i in range(1, 41)]
    ap_rows = [{"epoch": e, "AP50": 0.1 * e, "AP50:95": 0.04 * e} for e in (1, 2, 3)]
    path = save_training_curves(history_to_series(rows, "iteration"), history_to_series(ap_rows, "epoch"),
                                tmp_path / "sub" / "curves.png", "crater")
    image = cv2.imread(str(path))
    assert image.shape == (450, 1200, 3)
    coloured = np.abs(image.astype(int) - image.mean(axis=2, keepdims=True)).max(axis=2) > 40
    assert coloured[:, :600].sum() > 200 and coloured[:, 600:].sum() > 200  # lines in both panels


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now raises ImportError
    with pytest.raises(MissingExtra, match=r"needs matplotlib, which is not installed: pip install matplotlib"):
        save_training_curves({}, {}, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_prediction_grid_draws_truth_green_predictions_red_and_pads_the_grid(tmp_path):
    image = np.full((100, 200, 3), 50, np.uint8)
    truth = np.array([[10, 10, 60, 60]], np.float64)
    predictions = np.array([[100, 20, 180, 90, 0.9], [0, 0, 199, 99, 0.1]])  # the second is below score_thr
    path = save_prediction_grid([image] * 3, [predictions] * 3, [truth] * 3, tmp_path / "grid.png",
                                tile_size=200, cols=2)
    grid = cv2.imread(str(path))
    assert grid.shape == (400, 400, 3)
    assert tuple(grid[10, 35]) == (60, 200, 60)  # top edge of the ground-truth box
    assert tuple(grid[20, 140]) == (40, 40, 230)  # top edge of the kept prediction
    assert tuple(grid[0, 120]) == (50, 50, 50)  # the low-score prediction is not drawn
    assert (grid[200:, 200:] == 255).all()  # the fourth cell is blank
