import numpy as np
import pytest
import torch

from tests.data.synth import random_coco_set
from yolox.data import (
    COCODataset, DataLoader, InfiniteSampler, MosaicDetection, TrainTransform, YoloBatchSampler,
    worker_init_reset_seed,
)

INPUT_HW = (64, 96)  # not square, so an h/w swap shows


@pytest.fixture(scope="module")
def inner(tmp_path_factory):
    root = random_coco_set(tmp_path_factory.mktemp("mosaic"), num_images=8)
    return COCODataset(str(root), img_size=INPUT_HW)


def exp_like_mosaic(inner, **overrides):
    """MosaicDetection with the default Exp's augmentation values (mosaic_scale (0.1, 2), mixup on)."""
    params = dict(mosaic=True, degrees=10.0, translate=0.1, mosaic_scale=(0.1, 2), mixup_scale=(0.5, 1.5),
                  shear=2.0, enable_mixup=True, mosaic_prob=1.0, mixup_prob=1.0)
    params.update(overrides)
    preproc = TrainTransform(max_labels=40, flip_prob=0.5, hsv_prob=1.0)
    return MosaicDetection(inner, img_size=INPUT_HW, preproc=preproc, **params)


def assert_boxes_valid(labels, num_classes=2):
    rows = labels[labels.sum(1) > 0]
    cls, cx, cy, w, h = rows.T
    assert ((w > 0) & (h > 0)).all(), rows
    eps = 1e-3
    assert (cx - w / 2 >= -eps).all() and (cx + w / 2 <= INPUT_HW[1] + eps).all(), rows
    assert (cy - h / 2 >= -eps).all() and (cy + h / 2 <= INPUT_HW[0] + eps).all(), rows
    assert set(cls.tolist()) <= set(range(num_classes))
    return len(rows)


def test_mosaic_mixup_boxes_inside_canvas_with_positive_size(inner):
    dataset = exp_like_mosaic(inner)
    total = 0
    for seed in range(60):
        img, labels, _, _ = dataset[(True, seed % len(dataset), seed)]
        assert img.shape == (3, *INPUT_HW) and img.dtype == np.float32
        assert labels.shape == (40, 5)
        total += assert_boxes_valid(labels)
    assert total > 60  # the seeds really produced boxes


def test_mixup_alone_keeps_boxes_in_image(inner):
    import random

    dataset = exp_like_mosaic(inner)
    base = np.full((*INPUT_HW, 3), 50, np.uint8)
    origin = np.array([[1.0, 2.0, 30.0, 40.0, 0.0]])
    for seed in range(40):
        random.seed(seed)
        mixed, labels = dataset.mixup(base.copy(), origin.copy(), INPUT_HW)
        assert mixed.shape == base.shape and mixed.dtype == np.uint8
        assert len(labels) > 1 and (labels[0] == origin[0]).all()
        x1, y1, x2, y2 = labels[1:, :4].T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= INPUT_HW[1]).all() and (y2 <= INPUT_HW[0]).all()
        assert (x2 >= x1).all() and (y2 >= y1).all()


def test_same_seed_same_item_other_seed_differs(inner):
    dataset = exp_like_mosaic(inner)
    first = dataset[(True, 3, 11)]
    again = dataset[(True, 3, 11)]
    other = dataset[(True, 3, 12)]
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_non_mosaic_branch_is_inner_item_through_preproc(inner):
    dataset = exp_like_mosaic(inner)
    plain = COCODataset(inner.data_dir, img_size=INPUT_HW, preproc=TrainTransform(max_labels=40))
    for index in range(3):
        wrapped = dataset[(False, index, 100 + index)]
        direct = plain[(False, index, 100 + index)]
        np.testing.assert_array_equal(wrapped[0], direct[0])
        np.testing.assert_array_equal(wrapped[1], direct[1])


def first_batches(dataset, num_workers, seed, num_batches=3, batch_size=4, close_after=None):
    sampler = InfiniteSampler(len(dataset), seed=0)
    batch_sampler = YoloBatchSampler(sampler=sampler, batch_size=batch_size, drop_last=False, mosaic=True, seed=seed)
    loader = DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers,
                        worker_init_fn=worker_init_reset_seed)
    batches = []
    for step, batch in enumerate(loader):
        batches.append((batch[0].clone(), batch[1].clone()))
        if close_after is not None and step == close_after:
            loader.close_mosaic()
        if len(batches) == num_batches:
            break
    return batches


def test_seeded_batches_reproducible_across_worker_counts(inner):
    dataset = exp_like_mosaic(inner)
    serial = first_batches(dataset, 0, seed=7)
    serial_again = first_batches(dataset, 0, seed=7)
    parallel = first_batches(dataset, 2, seed=7)
    for (img_a, lab_a), (img_b, lab_b), (img_c, lab_c) in zip(serial, serial_again, parallel):
        assert img_a.shape == (4, 3, *INPUT_HW) and lab_a.shape == (4, 40, 5)
        assert torch.equal(img_a, img_b) and torch.equal(lab_a, lab_b)
        assert torch.equal(img_a, img_c) and torch.equal(lab_a, lab_c)
    other_seed = first_batches(dataset, 0, seed=8, num_batches=1)
    assert not torch.equal(other_seed[0][0], serial[0][0])


def test_close_mosaic_switches_later_batches(inner):
    dataset = exp_like_mosaic(inner)
    batches = first_batches(dataset, 0, seed=7, num_batches=2, close_after=0)
    plain = COCODataset(inner.data_dir, img_size=INPUT_HW, preproc=TrainTransform(max_labels=40))
    sampler = YoloBatchSampler(sampler=InfiniteSampler(len(dataset), seed=0), batch_size=4, drop_last=False,
                               mosaic=False, seed=7)
    second = next(b for i, b in enumerate(sampler) if i == 1)
    expected = np.stack([plain[item][0] for item in second])
    np.testing.assert_array_equal(batches[1][0].numpy(), expected)


def test_mosaic_labels_sit_on_their_objects(tmp_path):
    """Bright rectangles on a dark background: with an affine of scale 1 and no rotation, shear or
    translation, every output box (mosaic placement, crop and flip) must cover bright pixels only."""
    import cv2

    from tests.data.synth import coco_dict, write_coco

    images = []
    for i in range(4):
        boxes = [(8 + 6 * i, 10, 30, 20, 1), (60, 30 + 4 * i, 24, 28, 1)]
        images.append((f"r{i}.png", INPUT_HW, boxes))
    root = write_coco(tmp_path, coco_dict(images, {1: "rect"}), images)
    for file_name, _, boxes in images:
        img = np.full((*INPUT_HW, 3), 60, np.uint8)
        for x, y, w, h, _ in boxes:
            img[y: y + h, x: x + w] = 200
        cv2.imwrite(str(root / "train2017" / file_name), img)
    inner = COCODataset(str(root), img_size=INPUT_HW)
    dataset = MosaicDetection(inner, img_size=INPUT_HW, preproc=TrainTransform(max_labels=20, flip_prob=0.5,
                                                                               hsv_prob=0.0),
                              degrees=0.0, translate=0.0, mosaic_scale=(1, 1), shear=0.0, enable_mixup=False)
    checked = 0
    for seed in range(20):
        img, labels, _, _ = dataset[(True, seed % 4, seed)]
        for _, cx, cy, w, h in labels[labels.sum(1) > 0]:
            x1, y1, x2, y2 = (int(round(v)) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            inside = img[:, y1:y2, x1:x2]
            assert (inside == 200).all(), (seed, cx, cy, w, h)
            assert x1 == 0 or (img[:, y1:y2, x1 - 1] != 200).any()  # the box is not too small either
            checked += 1
    assert checked > 20
