"""Crater augmentations around the per-image train transform: the eight flips and quarter turns, and
scale jitter once mosaic has stopped."""
import random
from typing import Tuple

import numpy as np

from yolox.data.data_augment import random_affine


class DihedralTransform:
    """After the train transform: random vertical flip and 90-degree turn (transpose) of image and boxes.

    With the transform's horizontal flip this covers all eight flips and quarter turns, which are exact
    for axis-aligned boxes (arbitrary angles would inflate the box of a circle by up to 41%). Craters
    look the same under them; only the sun direction changes, which is what the model should ignore.
    """

    def __init__(self, transform, vflip_prob: float = 0.5, transpose_prob: float = 0.5) -> None:
        self.transform = transform
        self.vflip_prob = vflip_prob
        self.transpose_prob = transpose_prob

    def __call__(self, image: np.ndarray, targets: np.ndarray, input_dim: Tuple[int, int]):
        image, labels = self.transform(image, targets, input_dim)
        valid = labels[:, 3] > 0
        if random.random() < self.vflip_prob:
            image = image[:, ::-1, :]
            labels[valid, 2] = image.shape[1] - labels[valid, 2]
        if image.shape[1] == image.shape[2] and random.random() < self.transpose_prob:
            image = image.transpose(0, 2, 1)
            labels[:, [1, 2, 3, 4]] = labels[:, [2, 1, 4, 3]]
        return np.ascontiguousarray(image), labels


class ScaleJitterTransform:
    """Before the train transform, for items without mosaic: random scale and translation of image and boxes.

    Lets the last `no_aug_epochs` keep the scale jitter that mosaic gave, without mosaic's tiling.
    Boxes pushed out of the image are clipped; the train transform drops the ones left without area.
    """

    def __init__(self, transform, scales: Tuple[float, float], translate: float) -> None:
        self.transform = transform
        self.scales = scales
        self.translate = translate

    def __call__(self, image: np.ndarray, targets: np.ndarray, input_dim: Tuple[int, int]):
        image, targets = random_affine(image, targets.copy(), target_size=(input_dim[1], input_dim[0]),
                                       degrees=0.0, translate=self.translate, scales=self.scales, shear=0.0)
        return self.transform(image, targets, input_dim)
