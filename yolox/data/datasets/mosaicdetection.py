"""Mosaic + random affine + mixup training wrapper around a detection dataset."""
import random
from typing import Sequence, Tuple

import cv2
import numpy as np

from ..data_augment import PAD_VALUE, blend_half, mixup_boxes, random_affine
from .datasets_wrapper import Dataset


def mosaic_placement(position: int, xc: int, yc: int, w: int, h: int, canvas_h: int, canvas_w: int):
    """Canvas rect and source rect (x1, y1, x2, y2) of tile `position` (0 TL, 1 TR, 2 BL, 3 BR)."""
    if position == 0:
        canvas = (max(xc - w, 0), max(yc - h, 0), xc, yc)
        source = (w - (canvas[2] - canvas[0]), h - (canvas[3] - canvas[1]), w, h)
    elif position == 1:
        canvas = (xc, max(yc - h, 0), min(xc + w, canvas_w), yc)
        source = (0, h - (canvas[3] - canvas[1]), min(w, canvas[2] - canvas[0]), h)
    elif position == 2:
        canvas = (max(xc - w, 0), yc, xc, min(canvas_h, yc + h))
        source = (w - (canvas[2] - canvas[0]), 0, w, min(canvas[3] - canvas[1], h))
    else:
        canvas = (xc, yc, min(xc + w, canvas_w), min(canvas_h, yc + h))
        source = (0, 0, min(w, canvas[2] - canvas[0]), min(canvas[3] - canvas[1], h))
    return canvas, source


def fit_resize(img: np.ndarray, size_hw: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """Resize so the image fits (h, w) with its aspect kept; return it and the ratio."""
    ratio = min(size_hw[0] / img.shape[0], size_hw[1] / img.shape[1])
    resized = cv2.resize(img, (int(img.shape[1] * ratio), int(img.shape[0] * ratio)), interpolation=cv2.INTER_LINEAR)
    return resized, ratio


class MosaicDetection(Dataset):
    """Training wrapper: 4-image mosaic, random affine and mixup, then `preproc` (a TrainTransform).

    With mosaic off (or the mosaic_prob draw failing) an item is the inner item through `preproc`.
    """

    def __init__(
        self,
        dataset,
        img_size: Sequence[int],
        mosaic: bool = True,
        preproc=None,
        degrees: float = 10.0,
        translate: float = 0.1,
        mosaic_scale: Tuple[float, float] = (0.5, 1.5),
        mixup_scale: Tuple[float, float] = (0.5, 1.5),
        shear: float = 2.0,
        enable_mixup: bool = True,
        mosaic_prob: float = 1.0,
        mixup_prob: float = 1.0,
        *args,
    ):
        super().__init__(img_size, mosaic=mosaic)
        self._dataset = dataset
        self.preproc = preproc
        self.degrees = degrees
        self.translate = translate
        self.scale = mosaic_scale
        self.shear = shear
        self.mixup_scale = mixup_scale
        self.enable_mixup = enable_mixup
        self.mosaic_prob = mosaic_prob
        self.mixup_prob = mixup_prob

    def __len__(self) -> int:
        return len(self._dataset)

    @Dataset.mosaic_getitem
    def __getitem__(self, idx: int):
        if self.enable_mosaic and random.random() < self.mosaic_prob:
            return self._mosaic_item(idx)
        self._dataset._input_dim = self.input_dim
        img, label, img_info, img_id = self._dataset.pull_item(idx)
        img, label = self.preproc(img, label, self.input_dim)
        return img, label, img_info, img_id

    def _mosaic_item(self, idx: int):
        input_h, input_w = self._dataset.input_dim[0], self._dataset.input_dim[1]
        yc = int(random.uniform(0.5 * input_h, 1.5 * input_h))
        xc = int(random.uniform(0.5 * input_w, 1.5 * input_w))
        indices = [idx] + [random.randint(0, len(self._dataset) - 1) for _ in range(3)]
        mosaic_img, tile_labels = None, []
        for position, index in enumerate(indices):
            img, labels, _, img_id = self._dataset.pull_item(index)
            img, scale = fit_resize(img, (input_h, input_w))
            h, w = img.shape[:2]
            if mosaic_img is None:
                mosaic_img = np.full((2 * input_h, 2 * input_w, img.shape[2]), PAD_VALUE, dtype=np.uint8)
            (cx1, cy1, cx2, cy2), (sx1, sy1, sx2, sy2) = mosaic_placement(position, xc, yc, w, h,
                                                                          2 * input_h, 2 * input_w)
            mosaic_img[cy1:cy2, cx1:cx2] = img[sy1:sy2, sx1:sx2]
            placed = labels.copy()
            if labels.size > 0:
                placed[:, 0:4:2] = scale * labels[:, 0:4:2] + (cx1 - sx1)
                placed[:, 1:4:2] = scale * labels[:, 1:4:2] + (cy1 - sy1)
            tile_labels.append(placed)

        mosaic_labels = np.concatenate(tile_labels, 0)
        np.clip(mosaic_labels[:, 0:4:2], 0, 2 * input_w, out=mosaic_labels[:, 0:4:2])
        np.clip(mosaic_labels[:, 1:4:2], 0, 2 * input_h, out=mosaic_labels[:, 1:4:2])
        mosaic_img, mosaic_labels = random_affine(
            mosaic_img, mosaic_labels, target_size=(input_w, input_h), degrees=self.degrees,
            translate=self.translate, scales=self.scale, shear=self.shear,
        )
        if self.enable_mixup and len(mosaic_labels) > 0 and random.random() < self.mixup_prob:
            mosaic_img, mosaic_labels = self.mixup(mosaic_img, mosaic_labels, self.input_dim)
        mix_img, padded_labels = self.preproc(mosaic_img, mosaic_labels, self.input_dim)
        # upstream's img_info here is (width, channels) of the CHW array; nothing reads it in training
        img_info = (mix_img.shape[1], mix_img.shape[0])
        return mix_img, padded_labels, img_info, img_id

    def mixup(self, origin_img: np.ndarray, origin_labels: np.ndarray, input_dim: Sequence[int]):
        """Blend a random labelled image (rescaled, maybe flipped, randomly cropped) into the mosaic."""
        jit_factor = random.uniform(*self.mixup_scale)
        flip = random.uniform(0, 1) > 0.5
        source_labels = []
        while len(source_labels) == 0:
            source_index = random.randint(0, self.__len__() - 1)
            source_labels = self._dataset.load_anno(source_index)
        img, source_labels, _, _ = self._dataset.pull_item(source_index)

        canvas_shape = (input_dim[0], input_dim[1], 3) if img.ndim == 3 else tuple(input_dim[:2])
        canvas = np.full(canvas_shape, PAD_VALUE, dtype=np.uint8)
        resized, ratio = fit_resize(img, input_dim)
        canvas[: resized.shape[0], : resized.shape[1]] = resized
        canvas = cv2.resize(canvas, (int(canvas.shape[1] * jit_factor), int(canvas.shape[0] * jit_factor)))
        ratio *= jit_factor
        if flip:
            canvas = canvas[:, ::-1]

        canvas_h, canvas_w = canvas.shape[:2]
        target_h, target_w = origin_img.shape[:2]
        padded = np.zeros((max(canvas_h, target_h), max(canvas_w, target_w), 3), dtype=np.uint8)
        padded[:canvas_h, :canvas_w] = canvas
        y_offset = random.randint(0, padded.shape[0] - target_h - 1) if padded.shape[0] > target_h else 0
        x_offset = random.randint(0, padded.shape[1] - target_w - 1) if padded.shape[1] > target_w else 0
        cropped = padded[y_offset: y_offset + target_h, x_offset: x_offset + target_w]

        boxes = mixup_boxes(source_labels[:, :4], ratio, flip, (canvas_w, canvas_h), (x_offset, y_offset),
                            (target_w, target_h))
        mixed_labels = np.vstack((origin_labels, np.hstack((boxes, source_labels[:, 4:5]))))
        return blend_half(origin_img, cropped), mixed_labels
