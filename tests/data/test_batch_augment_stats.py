"""The batched (device) augmentation draws the same statistics as the per-image numpy pipeline.

Both pipelines augment the same 64-image synthetic set at 96x96 with the default Exp's values
(mosaic, affine with mosaic_scale (0.1, 2), mixup, HSV, flips), 512 samples each from fixed seeds.
Tolerances (about three to four standard errors of 512 samples, measured side by side):
- boxes per image: means within 15% of each other;
- fraction of boxes dropped (by clipping to nothing or the min(w, h) > 1 filter): within 0.06;
- box width and height (median, 25th and 75th percentile): within 20% of each other;
- box centres (mean x and y as a fraction of the image): within 0.05;
- image mean within 6 grey levels, image standard deviation within 15%.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.data.synth import random_coco_set
from yolox.data import COCODataset, MosaicDetection, TrainTransform
from yolox.data.batch_augment import BatchAugment, BatchAugmentConfig
from yolox.data.datasets.read_crop import ReadCropDataset, collate_read_crop

INPUT_HW = (96, 96)
SAMPLES, BATCH = 512, 16
SETTINGS = dict(degrees=10.0, translate=0.1, mosaic_scale=(0.1, 2), mixup_scale=(0.5, 1.5), shear=2.0,
                enable_mixup=True, mosaic_prob=1.0, mixup_prob=1.0)


class CountingTransform(TrainTransform):
    """TrainTransform that counts the boxes it is given and the boxes it returns."""

    boxes_in = 0
    boxes_out = 0

    def __call__(self, image, targets, input_dim):
        image, labels = super().__call__(image, targets, input_dim)
        self.boxes_in += len(targets)
        self.boxes_out += int((labels.sum(1) > 0).sum())
        return image, labels


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = random_coco_set(Path(tmp_path_factory.mktemp("stats")), num_images=64, seed=3,
                           sizes=((96, 96), (64, 96), (96, 72)))
    return COCODataset(str(root), img_size=INPUT_HW)


def summary(pictures: np.ndarray, labels: np.ndarray, boxes_in: int) -> dict:
    rows = labels[labels.sum(-1) > 0]
    _, cx, cy, w, h = rows.T
    return {"boxes_per_image": len(rows) / len(labels), "dropped": 1 - len(rows) / boxes_in,
            "w": np.percentile(w, [25, 50, 75]), "h": np.percentile(h, [25, 50, 75]),
            "cx": cx.mean() / INPUT_HW[1], "cy": cy.mean() / INPUT_HW[0],
            "mean": pictures.mean(), "std": pictures.std()}


def old_pipeline(images) -> dict:
    preproc = CountingTransform(max_labels=60, flip_prob=0.5, hsv_prob=1.0)
    dataset = MosaicDetection(images, img_size=INPUT_HW, preproc=preproc, **SETTINGS)
    pictures, labels = zip(*(dataset[(True, seed % len(dataset), seed)][:2] for seed in range(SAMPLES)))
    return summary(np.stack(pictures), np.stack(labels), preproc.boxes_in)


def new_pipeline(images) -> dict:
    reader = ReadCropDataset(images, INPUT_HW)
    augment = BatchAugment(BatchAugmentConfig(max_labels=60, **SETTINGS))
    pictures, labels, boxes_in = [], [], 0
    for start in range(0, SAMPLES, BATCH):
        batch = collate_read_crop([reader[(True, (start + i) % len(reader), start + i)] for i in range(BATCH)])
        params_boxes = _boxes_before_filter(augment, batch)
        out_images, out_labels = augment(*batch[:3])
        pictures.append(out_images.numpy())
        labels.append(torch.nn.functional.pad(out_labels, (0, 0, 0, 60 - out_labels.shape[1])).numpy())
        boxes_in += params_boxes
    return summary(np.concatenate(pictures), np.concatenate(labels), boxes_in)


def _boxes_before_filter(augment: BatchAugment, batch) -> int:
    from yolox.data.batch_augment import BatchParams

    params = BatchParams(batch[2], INPUT_HW, augment.config)
    return int(params.box_count.sum())



def test_device_and_numpy_pipelines_draw_the_same_statistics(images, one_thread):
    old, new = old_pipeline(images), new_pipeline(images)
    assert new["boxes_per_image"] == pytest.approx(old["boxes_per_image"], rel=0.15), (old, new)
    assert abs(new["dropped"] - old["dropped"]) < 0.06, (old, new)
    for key in ("w", "h"):
        np.testing.assert_allclose(new[key], old[key], rtol=0.20, err_msg=f"{key}: {old} vs {new}")
    assert abs(new["cx"] - old["cx"]) < 0.05 and abs(new["cy"] - old["cy"]) < 0.05, (old, new)
    assert abs(new["mean"] - old["mean"]) < 6, (old, new)
    assert new["std"] == pytest.approx(old["std"], rel=0.15), (old, new)
