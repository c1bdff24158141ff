"""cocoeval_backend: faster-coco-eval when installed gives pycocotools' numbers; without it, pycocotools and a hint."""
import contextlib
import importlib.util
import io
import sys

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tests.conftest import loguru_messages
from yolox.evaluators.cocoeval_backend import cocoeval_class


@pytest.fixture(autouse=True)
def fresh_choice():
    cocoeval_class.cache_clear()
    yield
    cocoeval_class.cache_clear()


def random_dataset(rng: np.random.Generator, num_images: int = 12):
    """Clustered boxes on a coarse grid (IoU and score ties happen), some crowd gts, two categories."""
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


def run(eval_class, dataset: dict, results: list, max_dets: list):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**dataset, "annotations": [dict(a) for a in dataset["annotations"]]}
        coco_gt.createIndex()
        coco_eval = eval_class(coco_gt, coco_gt.loadRes([dict(r) for r in results]), "bbox")
        coco_eval.params.maxDets = max_dets
        coco_eval.evaluate()
        coco_eval.accumulate()
    return coco_eval


@pytest.mark.skipif(importlib.util.find_spec("faster_coco_eval") is None,
                    reason="faster-coco-eval is the eval extra: pip install -e '.[eval]'")
@pytest.mark.parametrize("seed, max_dets", [(0, [1, 10, 100]), (1, [1, 10, 1000]), (2, [1, 3, 5])])
def test_faster_coco_eval_gives_pycocotools_precision_and_recall(seed, max_dets):
    from faster_coco_eval import COCOeval_faster

    assert cocoeval_class() is COCOeval_faster
    dataset, results = random_dataset(np.random.default_rng(seed))
    expected, actual = run(COCOeval, dataset, results, max_dets), run(COCOeval_faster, dataset, results, max_dets)
    for key in ("precision", "recall"):
        assert actual.eval[key].shape == expected.eval[key].shape
        np.testing.assert_allclose(actual.eval[key], expected.eval[key], atol=1e-6, rtol=0, err_msg=key)


def test_without_faster_coco_eval_pycocotools_runs_and_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_coco_eval", None)  # an import of it now raises ImportError
    with loguru_messages("INFO") as messages:
        assert cocoeval_class() is COCOeval
        assert cocoeval_class() is COCOeval
    assert messages == ["COCO evaluation through pycocotools, slow on dense images: fast COCO evaluation needs "
                        "faster-coco-eval, which is not installed: pip install faster-coco-eval  "
                        "(or pip install -e \".[eval]\")"]
