"""FastCOCOeval gives pycocotools' per-image results field for field, crowds, ties and area ranges included."""
import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolox.evaluators.fast_cocoeval import FastCOCOeval


def random_dataset(rng: np.random.Generator, num_images: int = 12):
    """Clustered boxes on a coarse grid (so IoU ties happen), some crowd gts, two categories."""
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 200, "height": 200, "file_name": f"{image_id}.jpg"})
        for _ in range(rng.integers(0, 15)):
            x, y = rng.integers(0, 12, size=2) * 12.0
            w, h = rng.choice([4.0, 24.0, 40.0, 110.0], size=2)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(rng.integers(1, 3)), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": int(rng.random() < 0.1)})
        for _ in range(rng.integers(0, 25)):
            x, y = rng.integers(0, 12, size=2) * 12.0
            w, h = rng.choice([4.0, 24.0, 40.0, 110.0], size=2)
            results.append({"image_id": image_id, "category_id": int(rng.integers(1, 3)),
                            "bbox": [x, y, w, h], "score": float(rng.choice([0.3, 0.5, 0.9]))})
    categories = [{"id": 1, "name": "crater"}, {"id": 2, "name": "boulder"}]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run(eval_class, coco_gt: COCO, results: list, use_cats: bool, max_dets: list):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = eval_class(coco_gt, coco_gt.loadRes(results), "bbox")
        coco_eval.params.useCats = int(use_cats)
        coco_eval.params.maxDets = max_dets
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


def assert_same_image_results(expected: list, actual: list) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert (want is None) == (got is None)
        if want is None:
            continue
        assert want.keys() == got.keys()
        for key, value in want.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == got[key].dtype and np.array_equal(value, got[key]), key
            else:
                assert value == got[key], key


@pytest.mark.parametrize("seed, use_cats, max_dets", [(0, True, [1, 10, 100]), (1, False, [1, 10, 100]),
                                                      (2, True, [1, 3, 5])])
def test_matches_pycocotools(seed, use_cats, max_dets):
    dataset, results = random_dataset(np.random.default_rng(seed))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
    reference = run(COCOeval, coco_gt, results, use_cats, max_dets)
    fast = run(FastCOCOeval, coco_gt, results, use_cats, max_dets)
    assert_same_image_results(reference.evalImgs, fast.evalImgs)
    for key in ("precision", "recall", "scores"):
        assert np.array_equal(reference.eval[key], fast.eval[key])
    assert any(e is not None and e["dtIgnore"].any() for e in fast.evalImgs)
