import random

import numpy as np
import pytest
import torch

from tests.conftest import shared_path
from yolox.data.data_augment import (
    TrainTransform, ValTransform, augment_hsv, get_affine_matrix, get_aug_params, preproc, random_affine,
)


@pytest.fixture(scope="module")
def ref():
    return torch.load(shared_path("fixtures", "ref_preproc.pt"), weights_only=True)


def test_val_transform_matches_upstream(ref):
    image = ref["image_bgr_uint8"].numpy()
    out, dummy = ValTransform(legacy=False)(image.copy(), None, tuple(ref["val_input_size"]))
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, ref["val_image"].numpy())
    assert preproc(image, tuple(ref["val_input_size"]))[1] == ref["val_ratio"]
    assert dummy.shape == (1, 5)


@pytest.mark.parametrize("case", ["main", "train_one_dropped", "train_all_dropped"])
def test_train_transform_matches_upstream(ref, case):
    image = ref["image_bgr_uint8"].numpy()
    boxes = ref["train_boxes_in"] if case == "main" else ref[case]["boxes_in"]
    expected = ref["train_labels"] if case == "main" else ref[case]["labels"]
    transform = TrainTransform(max_labels=50, flip_prob=0.0, hsv_prob=0.0)
    out, labels = transform(image.copy(), boxes.numpy().copy(), tuple(ref["train_input_size"]))
    np.testing.assert_array_equal(out, ref["train_image"].numpy())
    assert labels.dtype == np.float32
    np.testing.assert_array_equal(labels, expected.numpy())


def test_legacy_val_transform_normalises_rgb():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    out, _ = ValTransform(legacy=True)(img, None, (4, 4))
    np.testing.assert_allclose(out[0], (1.0 - 0.485) / 0.229, rtol=1e-6)
    np.testing.assert_allclose(out[2], (0.0 - 0.406) / 0.225, rtol=1e-6)


def test_preproc_pads_bottom_right_with_114():
    img = np.full((10, 20, 3), 7, np.uint8)
    out, ratio = preproc(img, (32, 32))
    assert ratio == 32 / 20
    assert out.shape == (3, 32, 32)
    assert (out[:, :16, :] == 7).all() and (out[:, 16:, :] == 114).all()


def test_flip_mirrors_boxes_and_image():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255
    targets = np.array([[0.0, 2.0, 10.0, 12.0, 3.0]])
    out, labels = TrainTransform(max_labels=4, flip_prob=1.0, hsv_prob=0.0)(img, targets, (20, 40))
    assert (out[:, :, 30:] == 255).all() and (out[:, :, :30] == 0).all()
    np.testing.assert_array_equal(labels[0], [3.0, 35.0, 7.0, 10.0, 10.0])


def test_hsv_is_reproducible_and_changes_image():
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    outs = []
    for _ in range(2):
        np.random.seed(3)
        copy = img.copy()
        augment_hsv(copy)
        outs.append(copy)
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], img)


def test_truncation_logged_once(log_lines):
    img = np.zeros((64, 64, 3), np.uint8)
    targets = np.array([[i, i, i + 10.0, i + 10.0, 0] for i in range(8)])
    transform = TrainTransform(max_labels=5, flip_prob=0.0, hsv_prob=0.0)
    for _ in range(3):
        _, labels = transform(img.copy(), targets.copy(), (64, 64))
    assert labels.shape == (5, 5) and (labels[:, 3] > 0).all()
    assert sum("max_labels=5" in line for line in log_lines) == 1


def test_no_boxes_gives_zero_labels():
    _, labels = TrainTransform(max_labels=7)(np.zeros((8, 8, 3), np.uint8), np.zeros((0, 5)), (8, 8))
    assert labels.shape == (7, 5) and not labels.any()


def test_aug_params_accept_ints_floats_and_pairs():
    random.seed(0)
    assert -10 <= get_aug_params(10) <= 10
    assert 0.5 <= get_aug_params(0.5, center=1.0) <= 1.5
    assert 2 <= get_aug_params((2, 3)) <= 3
    assert 2 <= get_aug_params([2, 3]) <= 3


@pytest.mark.parametrize("bad", ["10", (1, 2, 3), None, True, (1, "2")])
def test_aug_params_reject_bad_values_clearly(bad):
    with pytest.raises(ValueError, match="number or a \\(min, max\\) pair"):
        get_aug_params(bad)


def test_affine_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="positive mosaic_scale"):
        get_affine_matrix((64, 64), scales=(-2, -1))


def test_random_affine_identity_parameters_keep_image_and_boxes():
    img = np.random.default_rng(1).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    targets = np.array([[4.0, 5.0, 20.0, 30.0, 1.0]])
    out, moved = random_affine(img, targets.copy(), target_size=(48, 32), degrees=0, translate=0,
                               scales=(1, 1), shear=0)
    np.testing.assert_array_equal(out, img)
    np.testing.assert_allclose(moved, targets)


def test_random_affine_pure_scale_moves_boxes():
    img = np.zeros((32, 32, 3), np.uint8)
    targets = np.array([[4.0, 4.0, 8.0, 12.0, 2.0], [30.0, 30.0, 40.0, 40.0, 0.0]])
    _, moved = random_affine(img, targets, target_size=(32, 32), degrees=0, translate=0, scales=(2, 2), shear=0)
    np.testing.assert_allclose(moved[0], [8.0, 8.0, 16.0, 24.0, 2.0])
    np.testing.assert_allclose(moved[1, :4], [32.0, 32.0, 32.0, 32.0])  # clipped to the output


def test_blend_half_equals_the_float32_blend_with_truncation():
    from yolox.data.data_augment import blend_half

    rng = np.random.default_rng(0)
    first = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    second = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    reference = (0.5 * first.astype(np.float32) + 0.5 * second.astype(np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(blend_half(first, second), reference)
    np.testing.assert_array_equal(blend_half(np.full((2, 2), 255, np.uint8), np.full((2, 2), 254, np.uint8)), 254)
