"""Synthetic crater sets: deterministic bytes, boxes inside the images, valid COCO that the loaders read."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from yolox.synthetic.craters import DENSE_FIELD, CraterFieldConfig, generate_synthetic_craters, render_crater_field

SMALL = dict(num_train=6, num_val=3, img_size=96)


def tree_digest(root: Path) -> dict:
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    generate_synthetic_craters(tmp_path / "a", seed=7, **SMALL)
    generate_synthetic_craters(tmp_path / "b", seed=7, **SMALL)
    generate_synthetic_craters(tmp_path / "c", seed=8, **SMALL)
    first, second, other = (tree_digest(tmp_path / name) for name in "abc")
    assert first == second
    assert len(first) == 2 + SMALL["num_train"] + SMALL["num_val"]
    assert first["train2017/crater_00001.png"] != other["train2017/crater_00001.png"]


def test_coco_layout_is_valid_and_boxes_lie_inside(tmp_path):
    counts = generate_synthetic_craters(tmp_path, seed=0, **SMALL)
    assert counts["train2017_images"] == SMALL["num_train"] and counts["val2017_images"] == SMALL["num_val"]
    for folder, ann_file in (("train2017", "instances_train2017.json"), ("val2017", "instances_val2017.json")):
        raw = json.loads((tmp_path / "annotations" / ann_file).read_text())
        assert raw["categories"] == [{"id": 1, "name": "crater", "supercategory": "crater"}]
        coco = COCO(str(tmp_path / "annotations" / ann_file))
        assert len(coco.getAnnIds()) == counts[f"{folder}_boxes"] > 0
        ann_ids = [a["id"] for a in raw["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids)
        for image in raw["images"]:
            pixels = cv2.imread(str(tmp_path / folder / image["file_name"]), cv2.IMREAD_UNCHANGED)
            assert pixels.shape == (image["height"], image["width"]) == (96, 96)
            assert pixels.dtype == np.uint8 and pixels.std() > 5      # texture, not a flat field
        for ann in raw["annotations"]:
            x, y, w, h = ann["bbox"]
            assert ann["category_id"] == 1 and ann["iscrowd"] == 0
            assert x >= 0 and y >= 0 and w >= 2 and h >= 2
            assert x + w <= 96 + 1e-6 and y + h <= 96 + 1e-6
            assert ann["area"] == pytest.approx(w * h, abs=0.01)


def test_craters_are_shaded_bowls_lit_from_one_side():
    """Inside a crater, the wall facing the sun is brighter than the opposite wall."""
    cfg = CraterFieldConfig(img_size=128, craters_per_image=(1, 1), min_radius=20, max_radius_fraction=0.2,
                            noise_sigma=0.0)
    rng = np.random.default_rng(3)
    image, boxes = render_crater_field(rng, cfg)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    cx, cy, r = x + w / 2, y + h / 2, w / 2
    # find the sun direction the renderer drew: compare opposite inner walls along 8 directions
    contrasts = []
    for angle in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        dx, dy = np.cos(angle) * 0.6 * r, np.sin(angle) * 0.6 * r
        near = image[int(np.clip(cy + dy, 0, 127)), int(np.clip(cx + dx, 0, 127))]
        far = image[int(np.clip(cy - dy, 0, 127)), int(np.clip(cx - dx, 0, 127))]
        contrasts.append(float(near) - float(far))
    assert max(contrasts) > 40        # one wall clearly lit, the opposite one in shade


def test_too_small_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match="img_size 16"):
        generate_synthetic_craters(tmp_path, num_train=1, num_val=1, img_size=16)


def test_loads_through_the_crater_exp(tmp_path):
    from yolox.exp import get_exp

    generate_synthetic_craters(tmp_path, seed=1, **SMALL)
    repo = Path(__file__).resolve().parents[2]
    exp = get_exp(str(repo / "exps" / "crater" / "yolox_nano_crater.py"), None)
    exp.data_dir = str(tmp_path)
    exp.input_size = exp.test_size = (96, 96)
    dataset = exp.get_eval_dataset()
    assert len(dataset) == SMALL["num_val"] and dataset.class_ids == [1]
    image, _, info, _ = dataset[0]
    assert image.shape == (3, 96, 96) and tuple(info) == (96, 96)


def test_dense_field_holds_a_thousand_small_craters_per_800px_image():
    diameters, counts = [], []
    for seed in range(2):
        _, boxes = render_crater_field(np.random.default_rng(seed), CraterFieldConfig(**DENSE_FIELD))
        counts.append(len(boxes))
        diameters.append(np.maximum(boxes[:, 2], boxes[:, 3]))
    diameters = np.concatenate(diameters)
    assert all(1000 <= count <= 3000 for count in counts)
    assert diameters.min() < 5 and 6 < np.median(diameters) < 12 and diameters.max() > 64


def test_power_law_sizes_favour_small_craters_more_than_log_uniform():
    def median_diameter(slope: float) -> float:
        cfg = CraterFieldConfig(img_size=256, min_radius=1.5, craters_per_image=(300, 300), size_slope=slope)
        _, boxes = render_crater_field(np.random.default_rng(0), cfg)
        return float(np.median(np.maximum(boxes[:, 2], boxes[:, 3])))

    assert median_diameter(2.0) < median_diameter(0.0)
