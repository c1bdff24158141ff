"""PNG figures of a training run drawn with OpenCV: loss and AP curves, and a grid of predictions."""
import math
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

Series = Tuple[Sequence[float], Sequence[float]]

_COLOURS = [(180, 80, 20), (40, 140, 240), (60, 170, 60), (50, 50, 210), (160, 90, 160), (120, 120, 120)]
_WHITE, _BLACK, _GRID = (255, 255, 255), (30, 30, 30), (225, 225, 225)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def draw_line_chart(series: Mapping[str, Series], title: str, xlabel: str,
                    size: Tuple[int, int] = (640, 400), y_range: Optional[Tuple[float, float]] = None) -> np.ndarray:
    """A BGR image of one chart: a line per named series of (xs, ys), with axes, ticks and legend."""
    width, height = size
    canvas = np.full((height, width, 3), _WHITE, np.uint8)
    left, right, top, bottom = 70, 20, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    cv2.putText(canvas, title, (left, 25), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
    points = [(np.asarray(xs, np.float64), np.asarray(ys, np.float64)) for xs, ys in series.values()]
    finite = [(xs[np.isfinite(ys)], ys[np.isfinite(ys)]) for xs, ys in points]
    all_x = np.concatenate([xs for xs, _ in finite]) if finite else np.zeros(0)
    all_y = np.concatenate([ys for _, ys in finite]) if finite else np.zeros(0)
    if all_x.size == 0:
        cv2.putText(canvas, "no data yet", (left + 10, top + plot_h // 2), _FONT, 0.6, _BLACK, 1, cv2.LINE_AA)
        return canvas
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    y_lo, y_hi = y_range if y_range is not None else (float(all_y.min()), float(all_y.max()))
    x_hi, y_hi = (x_hi if x_hi > x_lo else x_lo + 1.0), (y_hi if y_hi > y_lo else y_lo + 1.0)

    def to_pixel(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        px = left + (xs - x_lo) / (x_hi - x_lo) * plot_w
        py = top + plot_h - (np.clip(ys, y_lo, y_hi) - y_lo) / (y_hi - y_lo) * plot_h
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for tick in range(5):
        frac = tick / 4
        y_pix = int(round(top + plot_h - frac * plot_h))
        x_pix = int(round(left + frac * plot_w))
        cv2.line(canvas, (left, y_pix), (left + plot_w, y_pix), _GRID, 1)
        cv2.putText(canvas, _nice_number(y_lo + frac * (y_hi - y_lo)), (5, y_pix + 4), _FONT, 0.4, _BLACK, 1,
                    cv2.LINE_AA)
        cv2.putText(canvas, _nice_number(x_lo + frac * (x_hi - x_lo)), (x_pix - 15, top + plot_h + 18), _FONT,
                    0.4, _BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), _BLACK, 1)
    cv2.putText(canvas, xlabel, (left + plot_w // 2 - 20, height - 10), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    for index, (name, (xs, ys)) in enumerate(zip(series.keys(), finite)):
        colour = _COLOURS[index % len(_COLOURS)]
        pixels = to_pixel(xs, ys)
        if len(pixels) > 1:
            cv2.polylines(canvas, [pixels.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        for px, py in pixels if len(pixels) <= 50 else ():
            cv2.circle(canvas, (int(px), int(py)), 3, colour, -1, cv2.LINE_AA)
        legend_y = top + 18 + 18 * index
        cv2.line(canvas, (left + plot_w - 150, legend_y - 4), (left + plot_w - 130, legend_y - 4), colour, 2)
        cv2.putText(canvas, name, (left + plot_w - 125, legend_y), _FONT, 0.45, _BLACK, 1, cv2.LINE_AA)
    return canvas


def save_training_curves(loss_history: Mapping[str, Series], ap_history: Mapping[str, Series], path,
                         title: str = "") -> Path:
    """Write one PNG: losses against iteration (left) and AP against epoch (right)."""
    loss_chart = draw_line_chart(loss_history, f"{title} training loss".strip(), "iteration")
    ap_chart = draw_line_chart(ap_history, f"{title} validation AP".strip(), "epoch", y_range=(0.0, 1.0))
    return _write_png(np.hstack([loss_chart, ap_chart]), path)


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


def _write_png(image: np.ndarray, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"could not write {path}: check that the folder is writable")
    return path


def history_to_series(rows: Sequence[Dict[str, float]], x_key: str) -> Dict[str, Series]:
    """Turn [{x_key: x, name: value, ...}, ...] into {name: (xs, ys)} for draw_line_chart."""
    names = [key for key in (rows[0] if rows else {}) if key != x_key]
    return {name: ([row[x_key] for row in rows if name in row], [row[name] for row in rows if name in row])
            for name in names}
