"""Image and box augmentation for YOLOX: letterbox, HSV jitter, flip, random affine.

Images are OpenCV BGR uint8 HWC arrays. Random draws use Python's `random`, except the HSV
gains, which use NumPy's global RNG; reseeding both (see `Dataset.mosaic_getitem`) makes every
transform here reproducible.
"""
import math
import numbers
import random
from typing import Sequence, Tuple, Union

import cv2
import numpy as np
from loguru import logger

from .errors import DataError

AugValue = Union[float, int, Sequence[float]]

PAD_VALUE = 114
LEGACY_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
LEGACY_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)


def xyxy_to_cxcywh(boxes: np.ndarray) -> np.ndarray:
    """(x1, y1, x2, y2) rows -> new (cx, cy, w, h) rows; centre = corner + half size, as upstream."""
    out = np.array(boxes, copy=True)
    out[:, 2] = boxes[:, 2] - boxes[:, 0]
    out[:, 3] = boxes[:, 3] - boxes[:, 1]
    out[:, 0] = boxes[:, 0] + out[:, 2] * 0.5
    out[:, 1] = boxes[:, 1] + out[:, 3] * 0.5
    return out


def preproc(img: np.ndarray, input_size: Tuple[int, int], swap=(2, 0, 1)) -> Tuple[np.ndarray, float]:
    """Letterbox `img` top-left onto a 114-filled (h, w) canvas; return (CHW float32, ratio)."""
    canvas_h, canvas_w = int(input_size[0]), int(input_size[1])
    canvas_shape = (canvas_h, canvas_w, img.shape[2]) if img.ndim == 3 else (canvas_h, canvas_w)
    padded = np.full(canvas_shape, PAD_VALUE, dtype=np.uint8)
    ratio = min(canvas_h / img.shape[0], canvas_w / img.shape[1])
    resized_w, resized_h = int(img.shape[1] * ratio), int(img.shape[0] * ratio)
    resized = cv2.resize(img, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
    padded[:resized_h, :resized_w] = resized.astype(np.uint8)
    if padded.ndim == 3:
        padded = padded.transpose(swap)
    return np.ascontiguousarray(padded, dtype=np.float32), ratio


def augment_hsv(img: np.ndarray, hgain: float = 5, sgain: float = 30, vgain: float = 30) -> None:
    """Jitter hue, saturation and value of a BGR uint8 image in place (each channel with prob 1/2)."""
    gains = np.random.uniform(-1, 1, 3) * [hgain, sgain, vgain]
    gains *= np.random.randint(0, 2, 3)
    gains = gains.astype(np.int16)
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + gains[0]) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + gains[1], 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + gains[2], 0, 255)
    cv2.cvtColor(hsv.astype(img.dtype), cv2.COLOR_HSV2BGR, dst=img)


def mirror(image: np.ndarray, boxes: np.ndarray, prob: float = 0.5) -> Tuple[np.ndarray, np.ndarray]:
    """Flip image columns and xyxy boxes horizontally with probability `prob`."""
    width = image.shape[1]
    if random.random() < prob:
        image = image[:, ::-1]
        boxes = boxes.copy()
        boxes[:, 0::2] = width - boxes[:, 2::-2]
    return image, boxes


def aug_range(value: AugValue, center: float = 0) -> Tuple[float, float]:
    """(low, high) of the draw: (center - v, center + v) for a number v, or (a, b) for a pair (a, b)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return center - value, center + value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value
    ):
        return value[0], value[1]
    raise DataError(
        f"augmentation parameter must be a number or a (min, max) pair of numbers, got {value!r}: "
        "fix degrees/translate/shear/mosaic_scale/mixup_scale in your exp"
    )


def get_aug_params(value: AugValue, center: float = 0) -> float:
    """Draw U(center - v, center + v) for a number v, or U(a, b) for a pair (a, b)."""
    return random.uniform(*aug_range(value, center))


def get_affine_matrix(
    target_size: Tuple[int, int],
    degrees: AugValue = 10,
    translate: AugValue = 0.1,
    scales: AugValue = 0.1,
    shear: AugValue = 10,
) -> Tuple[np.ndarray, float]:
    """Random 2x3 affine matrix (rotation+scale about the origin, shear, translation) and its scale.

    `target_size` is (width, height) of the output. Draw order: angle, scale, shear x, shear y,
    translation x, translation y.
    """
    out_w, out_h = target_size
    angle = get_aug_params(degrees)
    scale = get_aug_params(scales, center=1.0)
    if scale <= 0.0:
        raise DataError(f"affine scale drawn from {scales!r} is {scale} <= 0: use a positive mosaic_scale range")
    rotation = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=scale)
    shear_x = math.tan(math.radians(get_aug_params(shear)))
    shear_y = math.tan(math.radians(get_aug_params(shear)))
    matrix = np.ones((2, 3))
    matrix[0] = rotation[0] + shear_y * rotation[1]
    matrix[1] = rotation[1] + shear_x * rotation[0]
    matrix[0, 2] = get_aug_params(translate) * out_w
    matrix[1, 2] = get_aug_params(translate) * out_h
    return matrix, scale


def apply_affine_to_bboxes(targets: np.ndarray, target_size: Tuple[int, int], matrix: np.ndarray) -> np.ndarray:
    """Map xyxy boxes (columns 0-3 of `targets`) through `matrix`; keep the enclosing box, clipped."""
    out_w, out_h = target_size
    num_boxes = len(targets)
    corners = np.ones((4 * num_boxes, 3))
    corners[:, :2] = targets[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(4 * num_boxes, 2)
    corners = (corners @ matrix.T).reshape(num_boxes, 8)
    xs, ys = corners[:, 0::2], corners[:, 1::2]
    targets[:, 0] = xs.min(1).clip(0, out_w)
    targets[:, 1] = ys.min(1).clip(0, out_h)
    targets[:, 2] = xs.max(1).clip(0, out_w)
    targets[:, 3] = ys.max(1).clip(0, out_h)
    return targets


def random_affine(
    img: np.ndarray,
    targets: np.ndarray = (),
    target_size: Tuple[int, int] = (640, 640),
    degrees: AugValue = 10,
    translate: AugValue = 0.1,
    scales: AugValue = 0.1,
    shear: AugValue = 10,
) -> Tuple[np.ndarray, np.ndarray]:
    """Warp `img` to `target_size` (width, height) with a random affine; move xyxy targets with it."""
    matrix, _ = get_affine_matrix(target_size, degrees, translate, scales, shear)
    img = cv2.warpAffine(img, matrix, dsize=tuple(target_size), borderValue=(PAD_VALUE,) * 3)
    if len(targets) > 0:
        targets = apply_affine_to_bboxes(targets, target_size, matrix)
    return img, targets


def mixup_boxes(
    boxes: np.ndarray, ratio: float, flip: bool, canvas_wh: Tuple[int, int], offset_xy: Tuple[int, int],
    out_wh: Tuple[int, int],
) -> np.ndarray:
    """Place xyxy boxes of a mixup source: scale, clip to its canvas, flip, shift by the crop, clip."""
    canvas_w, canvas_h = canvas_wh
    placed = boxes.astype(np.float64, copy=True)
    placed[:, 0::2] = np.clip(placed[:, 0::2] * ratio, 0, canvas_w)
    placed[:, 1::2] = np.clip(placed[:, 1::2] * ratio, 0, canvas_h)
    if flip:
        placed[:, 0::2] = canvas_w - placed[:, 2::-2]
    placed[:, 0::2] = np.clip(placed[:, 0::2] - offset_xy[0], 0, out_wh[0])
    placed[:, 1::2] = np.clip(placed[:, 1::2] - offset_xy[1], 0, out_wh[1])
    return placed


def blend_half(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """0.5 * first + 0.5 * second truncated to uint8, for uint8 images.

    (a + b) >> 1 in 16-bit integers is exactly upstream's float32 blend with truncation (every value
    involved is exact in float32) at a fraction of the memory traffic.
    """
    total = np.add(first, second, dtype=np.uint16)
    return np.right_shift(total, 1, out=total).astype(np.uint8)


class TrainTransform:
    """HSV jitter, flip, letterbox and box filtering; returns (CHW image, [max_labels, 5] labels).

    Label rows are (class, cx, cy, w, h) in input pixels, zero padded. `max_labels` is the
    caller's cap (the Exp's `max_labels` for training); extra boxes are dropped with one warning.
    """

    def __init__(self, max_labels: int = 50, flip_prob: float = 0.5, hsv_prob: float = 1.0):
        self.max_labels = max_labels
        self.flip_prob = flip_prob
        self.hsv_prob = hsv_prob
        self._truncation_logged = False

    def __call__(self, image: np.ndarray, targets: np.ndarray, input_dim: Tuple[int, int]):
        boxes = targets[:, :4].copy()
        labels = targets[:, 4].copy()
        if len(boxes) == 0:
            image, _ = preproc(image, input_dim)
            return image, np.zeros((self.max_labels, 5), dtype=np.float32)

        original_image = image.copy()
        original_boxes = xyxy_to_cxcywh(targets[:, :4])
        original_labels = labels.copy()

        if random.random() < self.hsv_prob:
            augment_hsv(image)
        image, boxes = mirror(image, boxes, self.flip_prob)
        image, ratio = preproc(image, input_dim)
        boxes = xyxy_to_cxcywh(boxes) * ratio
        keep = np.minimum(boxes[:, 2], boxes[:, 3]) > 1
        boxes, labels = boxes[keep], labels[keep]

        if len(boxes) == 0:
            # Nothing survived the size filter: train on the untouched image and all its boxes
            # (upstream's fallback), except boxes without area, which carry no signal.
            image, ratio = preproc(original_image, input_dim)
            boxes = original_boxes * ratio
            has_area = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            boxes, labels = boxes[has_area], original_labels[has_area]

        rows = np.hstack((labels[:, None], boxes))
        return image, self._pad(rows)

    def _pad(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) > self.max_labels and not self._truncation_logged:
            logger.warning(
                f"an image has {len(rows)} boxes but max_labels={self.max_labels}: extra boxes are dropped "
                "(raise max_labels in your exp for dense scenes); logged once"
            )
            self._truncation_logged = True
        padded = np.zeros((self.max_labels, 5), dtype=np.float32)
        kept = rows[: self.max_labels]
        padded[: len(kept)] = kept
        return padded


class ValTransform:
    """Letterbox for evaluation and demos; returns (CHW float32 image, dummy zeros (1, 5)).

    `legacy=True` reproduces pre-v0.1.1 inputs (RGB, /255, ImageNet mean/std) for old weights.
    """

    def __init__(self, swap=(2, 0, 1), legacy: bool = False):
        self.swap = swap
        self.legacy = legacy

    def __call__(self, img: np.ndarray, res, input_size: Tuple[int, int]):
        img, _ = preproc(img, input_size, self.swap)
        if self.legacy:
            img = img[::-1, :, :] / 255.0
            img = ((img - LEGACY_MEAN) / LEGACY_STD).astype(np.float32)
            img = np.ascontiguousarray(img)
        return img, np.zeros((1, 5))
