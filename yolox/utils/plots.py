"""PNG figures of a training run: loss and AP curves (matplotlib), and a grid of predictions (OpenCV)."""
import math
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import cv2
import numpy as np

from .optional import require

Series = Tuple[Sequence[float], Sequence[float]]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_MARKERS_UP_TO = 50  # points per series; above that the markers would hide the line


def _plot_series(axes, series: Mapping[str, Series], title: str, xlabel: str, ylabel: str) -> None:
    """One panel: a line per named series of (xs, ys), integer x ticks, legend, grid."""
    from matplotlib.ticker import MaxNLocator  # lazy: matplotlib is optional (the plots extra)

    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    drawn = 0
    for name, (xs, ys) in series.items():
        xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
        finite = np.isfinite(ys)
        if finite.any():
            marker = "o" if finite.sum() <= _MARKERS_UP_TO else None
            axes.plot(xs[finite], ys[finite], marker=marker, markersize=3, linewidth=1.5, label=name)
            drawn += 1
    if drawn:
        axes.legend(loc="best", fontsize="small")
        _widen_narrow_x(axes)
    else:
        axes.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=axes.transAxes)


def _widen_narrow_x(axes) -> None:
    """Give a series spanning under two x units one unit of room each side, so its ticks stay integers."""
    low, high = axes.dataLim.intervalx
    if high - low < 2:
        axes.set_xlim(low - 1, high + 1)


def save_training_curves(loss_history: Mapping[str, Series], ap_history: Mapping[str, Series], path,
                         title: str = "") -> Path:
    """Write one PNG: losses against iteration (left) and AP against epoch (right); needs matplotlib."""
    require("matplotlib", "plots", "the training-curves PNG")
    # lazy: matplotlib is optional; a bare Figure renders through Agg: no display, no global backend
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 4.5), dpi=100, layout="constrained")
    loss_axes, ap_axes = figure.subplots(1, 2)
    _plot_series(loss_axes, loss_history, f"{title} training loss".strip(), "iteration", "loss")
    _plot_series(ap_axes, ap_history, f"{title} validation AP".strip(), "epoch", "AP")
    ap_axes.set_ylim(bottom=0.0)
    path = _prepare(path)
    figure.savefig(path)
    return path


def draw_detections(image: np.ndarray, predictions: np.ndarray, ground_truth: np.ndarray,
                    score_thr: float = 0.3) -> np.ndarray:
    """Copy of a BGR image with ground-truth boxes in green and predictions (x1, y1, x2, y2, score) in red."""
    canvas = image.copy() if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    for x1, y1, x2, y2 in np.asarray(ground_truth, np.float64).reshape(-1, 4):
        cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), (60, 200, 60), 1)
    for x1, y1, x2, y2, score in np.asarray(predictions, np.float64).reshape(-1, 5):
        if score >= score_thr:
            cv2.rectangle(canvas, (int(x1), int(y1)), (int(x2), int(y2)), (40, 40, 230), 1)
    return canvas


def save_prediction_grid(images: Sequence[np.ndarray], predictions: Sequence[np.ndarray],
                         ground_truths: Sequence[np.ndarray], path, tile_size: int = 320, cols: int = 4,
                         score_thr: float = 0.3) -> Path:
    """Write a PNG grid: each validation image with its ground truth (green) and predictions (red)."""
    if not images:
        raise ValueError(f"no images to draw into {path}")
    tiles: List[np.ndarray] = []
    for image, preds, gts in zip(images, predictions, ground_truths):
        drawn = draw_detections(image, preds, gts, score_thr)
        scale = tile_size / max(drawn.shape[:2])
        resized = cv2.resize(drawn, (int(drawn.shape[1] * scale), int(drawn.shape[0] * scale)))
        tile = np.full((tile_size, tile_size, 3), 114, np.uint8)
        tile[:resized.shape[0], :resized.shape[1]] = resized
        label = f"gt {len(np.asarray(gts).reshape(-1, 4))}  pred {int((np.asarray(preds).reshape(-1, 5)[:, 4] >= score_thr).sum())}"
        cv2.putText(tile, label, (5, tile_size - 8), _FONT, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cols = min(cols, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    blank = np.full((tile_size, tile_size, 3), 255, np.uint8)
    tiles += [blank] * (rows * cols - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(rows)])
    return _write_png(grid, path)


def _prepare(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _write_png(image: np.ndarray, path) -> Path:
    path = _prepare(path)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}: check that the folder is writable")
    return path


def history_to_series(rows: Sequence[Dict[str, float]], x_key: str) -> Dict[str, Series]:
    """Turn [{x_key: x, name: value, ...}, ...] into {name: (xs, ys)} for save_training_curves."""
    names = [key for key in (rows[0] if rows else {}) if key != x_key]
    return {name: ([row[x_key] for row in rows if name in row], [row[name] for row in rows if name in row])
            for name in names}
