"""The capped, in-memory COCO evaluation gives pycocotools' own figures on dense outputs; amp forward; caps."""
import contextlib
import io
import json

import numpy as np
import pytest
import torch
import torchvision
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch.utils.data import DataLoader

from tests.evaluators.test_coco_evaluator import IndexedImages
from yolox.evaluators import COCOEvaluator, coco_evaluator
from yolox.utils.device import build_policy

IMAGE_SIZE, TEST_SIZE = 200, (400, 400)  # letterbox scale 2: exact in float32 either way round
NUM_CLASSES, ANCHORS, MAX_DETS, CONF, NMS = 2, 700, 100, 0.001, 0.65


def synthetic_gt(rng: np.random.Generator, num_images: int = 6) -> COCO:
    """Two classes of boxes on 200 px images, a few crowd."""
    images, anns = [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "file_name": f"{image_id}.png"})
        for _ in range(rng.integers(20, 60)):
            x, y = rng.uniform(0, 170, size=2)
            w, h = rng.uniform(3, 30, size=2)
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(rng.integers(1, 3)),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": int(rng.random() < 0.05)})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns,
                    "categories": [{"id": 1, "name": "crater"}, {"id": 2, "name": "boulder"}]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def dense_outputs(coco: COCO, rng: np.random.Generator) -> torch.Tensor:
    """[images, ANCHORS, 5+C] letterboxed (cx, cy, w, h, obj, cls...): jittered gts and random boxes, with
    scores on a coarse grid so equal scores are common, including at the per-class cap."""
    outputs = torch.zeros(len(coco.getImgIds()), ANCHORS, 5 + NUM_CLASSES)
    for index, image_id in enumerate(coco.getImgIds()):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
        picks = rng.integers(0, len(anns), size=ANCHORS // 2)
        copies = np.array([anns[k]["bbox"] for k in picks]) + rng.normal(0, 1.5, size=(len(picks), 4))
        extra = np.concatenate([rng.uniform(0, 180, size=(ANCHORS - len(copies), 2)),
                                rng.uniform(3, 30, size=(ANCHORS - len(copies), 2))], axis=1)
        boxes = np.concatenate([copies, extra]).clip(1, None)
        centres = (boxes[:, :2] + boxes[:, 2:] / 2) * 2
        obj = np.ceil(rng.uniform(0, 1, size=(ANCHORS, 1)) * 16) / 16
        cls = rng.uniform(0, 1, size=(ANCHORS, NUM_CLASSES))
        cls[np.arange(len(picks)), [anns[k]["category_id"] - 1 for k in picks]] += 1.0  # copies favour their class
        outputs[index] = torch.tensor(np.concatenate([centres, boxes[:, 2:] * 2, obj, cls / 2], axis=1))
    return outputs


class Replay(torch.nn.Module):
    """Returns fixed raw outputs for the batch's images; records whether it ran under autocast."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.outputs = outputs
        self.autocast_seen = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.autocast_seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return self.outputs[images[:, 0, 0, 0].long()].clone()


def reference_results(coco: COCO, outputs: torch.Tensor) -> list:
    """Every detection of a per-image threshold + class-aware NMS, as COCO result dicts (no cap)."""
    results = []
    for image_id, pred in zip(coco.getImgIds(), outputs):
        xyxy = torch.cat([pred[:, :2] - pred[:, 2:4] / 2, pred[:, :2] + pred[:, 2:4] / 2], dim=1)
        cls_conf, cls = pred[:, 5:].max(dim=1)
        scores = pred[:, 4] * cls_conf
        passing = scores >= CONF
        kept = torchvision.ops.batched_nms(xyxy[passing], scores[passing], cls[passing], NMS)
        for box, score, category in zip((xyxy[passing][kept] / 2).tolist(), scores[passing][kept].tolist(),
                                        cls[passing][kept].tolist()):
            results.append({"image_id": image_id, "category_id": category + 1, "score": score,
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
    return results


def pycocotools_stats(coco: COCO, results: list) -> np.ndarray:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval = COCOeval(coco, coco.loadRes(results), "bbox")
        coco_eval.params.maxDets = [1, 10, MAX_DETS]
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def evaluator_for(coco: COCO, **kwargs) -> COCOEvaluator:
    loader = DataLoader(IndexedImages(coco), batch_size=4, shuffle=False)
    return COCOEvaluator(loader, TEST_SIZE, confthre=CONF, nmsthre=NMS, num_classes=NUM_CLASSES, max_dets=MAX_DETS,
                         per_class_AP=False, per_class_AR=False, **kwargs)


@pytest.fixture(scope="module")
def dense_case():
    rng = np.random.default_rng(5)
    coco = synthetic_gt(rng)
    return coco, dense_outputs(coco, rng)


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval"])
def test_capped_in_memory_eval_gives_pycocotools_stats(dense_case, backend, monkeypatch, tmp_path):
    coco, outputs = dense_case
    if backend == "pycocotools":
        monkeypatch.setattr(coco_evaluator, "cocoeval_class", lambda: COCOeval)
    else:
        pytest.importorskip("faster_coco_eval")
    seen = []
    monkeypatch.setattr(coco_evaluator, "summarize",
                        lambda coco_eval, real=coco_evaluator.summarize: seen.append(real(coco_eval)) or seen[-1])
    results_file = tmp_path / "results.json"
    evaluator_for(coco, results_file=str(results_file)).evaluate(Replay(outputs))
    reference = reference_results(coco, outputs)

    expected = pycocotools_stats(coco, reference)
    assert 0.05 < expected[0] < 0.95
    if backend == "pycocotools":
        np.testing.assert_array_equal(seen[0][0], expected)
    else:
        np.testing.assert_allclose(seen[0][0], expected, atol=1e-9, rtol=0)
    written = json.loads(results_file.read_text())
    per_key = np.unique([[r["image_id"], r["category_id"]] for r in written], axis=0, return_counts=True)[1]
    reference_per_key = np.unique([[r["image_id"], r["category_id"]] for r in reference], axis=0,
                                  return_counts=True)[1]
    assert per_key.max() == MAX_DETS < reference_per_key.min()


def test_return_outputs_format(dense_case):
    coco, outputs = dense_case
    _, per_image = evaluator_for(coco).evaluate(Replay(outputs), return_outputs=True)
    assert sorted(per_image) == coco.getImgIds()
    first = per_image[coco.getImgIds()[0]]
    assert set(first) == {"bboxes", "scores", "categories"}
    assert len(first["bboxes"]) == len(first["scores"]) == len(first["categories"]) == NUM_CLASSES * MAX_DETS
    assert set(first["categories"]) == {1, 2} and all(type(c) is int for c in first["categories"])
    assert first["scores"] == sorted(first["scores"], reverse=True)
    x1, y1, x2, y2 = first["bboxes"][0]
    assert 0 <= x1 < x2 <= IMAGE_SIZE + 20 and 0 <= y1 < y2 <= IMAGE_SIZE + 20


def test_amp_runs_the_forward_under_the_policy_autocast(dense_case):
    coco, outputs = dense_case
    model = Replay(outputs)
    evaluator = evaluator_for(coco)
    ap_fp32 = evaluator.evaluate(model, policy=build_policy("cpu", bf16=True, self_check=False))[0]
    assert set(model.autocast_seen) == {False}
    model.autocast_seen.clear()
    ap_amp = evaluator.evaluate(model, policy=build_policy("cpu", bf16=True, self_check=False), amp=True)[0]
    assert set(model.autocast_seen) == {torch.bfloat16}
    assert ap_amp == ap_fp32  # the replayed outputs are float32 either way: postprocess is the same
    with pytest.raises(ValueError, match="policy"):
        evaluator.evaluate(model, amp=True)
