"""Label rows and detections per image follow the densest image unless the exp sets them."""
import json

import pytest

from yolox.data.label_caps import (HEADROOM, MIN_EVAL_MAX_DETS, MIN_MAX_LABELS, densest_image_boxes,
                                   images_per_sample, resolve_cap)
from yolox.synthetic.craters import generate_synthetic_craters

DENSEST = {"train": 1507, "val": 900}


def densest(split: str) -> int:
    return DENSEST[split]


def test_max_labels_is_the_densest_train_image_with_headroom_times_images_per_sample():
    value, reason = resolve_cap("max_labels", None, densest, sample_images=5)
    assert value == 5 * 1884 and value >= 5 * HEADROOM * DENSEST["train"]
    assert "densest train image 1507 boxes" in reason and "5 images per training sample" in reason
    assert resolve_cap("max_labels", None, densest, sample_images=1)[0] == 1884


def test_eval_max_dets_is_the_densest_val_image_with_headroom():
    value, reason = resolve_cap("eval_max_dets", None, densest, sample_images=5)
    assert value == 1125 and "densest val image 900 boxes" in reason


def test_values_set_by_the_exp_are_kept_and_the_data_is_not_read():
    def unread(split: str) -> int:
        raise AssertionError(f"{split} annotations read for a cap the exp set")

    assert resolve_cap("max_labels", 50, unread, 5) == (50, "set by the exp")
    assert resolve_cap("eval_max_dets", 2000, unread, 5) == (2000, "set by the exp")


def test_sparse_data_keeps_upstreams_floors():
    value, reason = resolve_cap("max_labels", None, lambda split: 3, sample_images=1)
    assert value == MIN_MAX_LABELS and "raised to" in reason
    assert resolve_cap("eval_max_dets", None, lambda split: 3, 1)[0] == MIN_EVAL_MAX_DETS


def test_unknown_cap_is_refused():
    with pytest.raises(ValueError, match="unknown cap"):
        resolve_cap("max_dets", None, densest, 1)


def test_images_per_sample_counts_mosaic_tiles_and_mixup():
    assert images_per_sample(0.0, True, 1.0) == 1
    assert images_per_sample(0.5, False, 1.0) == 4
    assert images_per_sample(1.0, True, 1.0) == 5
    assert images_per_sample(1.0, True, 0.0) == 4


def test_densest_image_boxes_is_the_densest_annotated_image(tmp_path):
    generate_synthetic_craters(tmp_path, num_train=4, num_val=2, img_size=64, seed=1, craters_per_image=(3, 12))
    for split in ("train", "val"):
        coco = json.loads((tmp_path / "annotations" / f"instances_{split}2017.json").read_text())
        per_image = [sum(a["image_id"] == image["id"] for a in coco["annotations"]) for image in coco["images"]]
        assert densest_image_boxes(str(tmp_path), split) == max(per_image)
