"""VOC AP rules (11-point and exact, difficult objects) and VOCEvaluator over a tiny VOC folder."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from yolox.evaluators import VOCEvaluator
from yolox.evaluators.voc_eval import voc_ap, voc_eval
from yolox.exp import get_exp

REPO = Path(__file__).resolve().parents[2]


def test_voc_ap_exact_and_eleven_point():
    recall, precision = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert voc_ap(recall, precision) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)


def test_voc_eval_matching_rules():
    objects = {
        0: [{"name": "dog", "difficult": False, "bbox": [1, 1, 10, 10]},
            {"name": "dog", "difficult": True, "bbox": [21, 21, 30, 30]},
            {"name": "cat", "difficult": False, "bbox": [1, 1, 10, 10]}],
        1: [{"name": "dog", "difficult": False, "bbox": [5, 5, 14, 14]}],
    }
    detections = [
        (0, 0.9, [1, 1, 10, 10]),    # true positive
        (0, 0.8, [1, 1, 10, 10]),    # duplicate: false positive
        (0, 0.7, [21, 21, 30, 30]),  # on the difficult dog: neither
        (1, 0.6, [40, 40, 49, 49]),  # miss: false positive
        (1, 0.5, [5, 5, 14, 14]),    # true positive
    ]
    recall, precision, ap = voc_eval(detections, objects, "dog", 0.5)
    # ranks: TP, FP, (ignored), FP, TP over 2 non-difficult dogs
    assert recall.tolist() == [0.5, 0.5, 0.5, 0.5, 1.0]
    assert precision.tolist() == pytest.approx([1.0, 0.5, 0.5, 1 / 3, 0.5])
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)
    assert np.isnan(voc_eval([], objects, "bird", 0.5)[2])


BOXES = {"000001": [("dog", 4, 6, 30, 40, 0), ("cat", 35, 10, 60, 44, 0)],
         "000002": [("dog", 10, 10, 50, 30, 0), ("dog", 2, 2, 8, 8, 1)]}


def write_voc(root: Path) -> None:
    year = root / "VOC2007"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (year / sub).mkdir(parents=True)
    (year / "ImageSets/Main/test.txt").write_text("\n".join(BOXES) + "\n")
    for name, objects in BOXES.items():
        cv2.imwrite(str(year / "JPEGImages" / f"{name}.jpg"), np.zeros((48, 64, 3), np.uint8))
        xml_objects = "".join(
            f"<object><name>{cls}</name><difficult>{difficult}</difficult><bndbox><xmin>{x1}</xmin>"
            f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for cls, x1, y1, x2, y2, difficult in objects)
        (year / "Annotations" / f"{name}.xml").write_text(
            f"<annotation><size><width>64</width><height>48</height></size>{xml_objects}</annotation>")


class AnnotationModel(torch.nn.Module):
    """Answers a sequential loader with each image's labels (letterboxed xyxy) as certain detections."""

    def __init__(self, dataset, num_classes: int) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.labels = [torch.as_tensor(dataset.load_anno(i), dtype=torch.float32) for i in range(len(dataset))]
        self.num_classes = num_classes
        self.cursor = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs = torch.zeros(images.shape[0], 4, 5 + self.num_classes)
        for slot in range(images.shape[0]):
            labels = self.labels[self.cursor]
            count = len(labels)
            outputs[slot, :count, :2] = (labels[:, :2] + labels[:, 2:4]) / 2
            outputs[slot, :count, 2:4] = labels[:, 2:4] - labels[:, :2]
            outputs[slot, :count, 4] = 1.0
            outputs[slot, torch.arange(count), 5 + labels[:, 4].long()] = 1.0
            self.cursor += 1
        return outputs


def test_voc_evaluator_on_ground_truth(tmp_path):
    write_voc(tmp_path)
    exp = get_exp(str(REPO / "exps" / "example" / "yolox_voc" / "yolox_voc_s.py"))
    assert (exp.num_classes, exp.warmup_epochs, exp.exp_name) == (20, 1, "yolox_voc_s")
    exp.data_dir = str(tmp_path)
    exp.test_size = (128, 128)
    exp.data_num_workers = 0
    evaluator = exp.get_evaluator(batch_size=2, is_distributed=False)
    assert isinstance(evaluator, VOCEvaluator)
    model = AnnotationModel(evaluator.dataloader.dataset, exp.num_classes)
    map50_95, map50, summary = exp.eval(model, evaluator, False)
    # dataset boxes are 0-based (xml - 1) and go back +1: every non-difficult object is found exactly
    assert map50 == pytest.approx(1.0) and map50_95 == pytest.approx(1.0)
    assert "VOC07 11-point" in summary and "| dog " in summary


def test_voc_evaluator_empty_predictions(tmp_path):
    write_voc(tmp_path)
    exp = get_exp(str(REPO / "exps" / "example" / "yolox_voc" / "yolox_voc_s.py"))
    exp.data_dir = str(tmp_path)
    exp.test_size = (128, 128)
    loader = DataLoader(exp.get_eval_dataset(), batch_size=2)
    evaluator = VOCEvaluator(loader, exp.test_size, 0.01, 0.65, exp.num_classes)
    silent = AnnotationModel(loader.dataset, exp.num_classes)
    silent.labels = [labels[:0] for labels in silent.labels]
    (map50_95, map50, _), outputs = evaluator.evaluate(silent, return_outputs=True)
    assert (map50_95, map50) == (0.0, 0.0)
    assert all(value == (None, None, None) for value in outputs.values())
