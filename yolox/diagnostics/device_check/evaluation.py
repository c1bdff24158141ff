"""The full-evaluation check: the project's COCO evaluator over a few generated crater images, device and CPU.

With random weights, AP against the craters is about 0 on every device and would hide any disagreement. So the
set's labels are the CPU's own detections (clipped to the image, as datasets clip labels): the CPU scores an AP
near 1 by construction, and a device whose evaluation (forward, decoding, NMS, collection) disagrees scores lower.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader

from yolox.data.data_augment import ValTransform
from yolox.data.datasets.coco import COCODataset
from yolox.diagnostics.device_check import tolerances as tol
from yolox.diagnostics.device_check.bench import Bench, Detections
from yolox.diagnostics.device_check.compare import CheckResult, check
from yolox.diagnostics.device_check.fixture import IMG_SIZE, CraterBatch
from yolox.diagnostics.device_check.parts import precision_suffix, autocast_for
from yolox.evaluators import COCOEvaluator
from yolox.utils.boxes import postprocess

NMS_THRE = 0.65
MAX_DETS = 100
# The score threshold lies in the widest gap (in log score) among the detections ranked between these counts
# per image, so float noise cannot move a detection across it and each image keeps well under MAX_DETS.
RANKS_PER_IMAGE = (20, 60)
SPLIT, ANN_FILE = "val2017", "instances_val2017.json"


@dataclass(frozen=True)
class EvalSet:
    """The evaluation set on disk and the thresholds every evaluation of it uses."""

    root: Path
    conf_thre: float
    nms_thre: float = NMS_THRE


def score_threshold(detections: torch.Tensor) -> float:
    """Midpoint (in log) of the widest gap among the ranked obj x cls scores of [B, A, 5+C] eval outputs."""
    scores = (detections[..., 4:5] * detections[..., 5:]).amax(dim=-1).flatten()
    ranked = scores.sort(descending=True).values.clamp_min(1e-30).log()
    count = detections.shape[0]
    low, high = RANKS_PER_IMAGE[0] * count, min(RANKS_PER_IMAGE[1] * count, len(ranked) - 1)
    gaps = ranked[low - 1:high - 1] - ranked[low:high]
    at = low - 1 + int(gaps.argmax())
    return float(((ranked[at] + ranked[at + 1]) / 2).exp())


def label_with_cpu_detections(bench: Bench, root: Path, images: CraterBatch) -> EvalSet:
    """Replace the set's annotations with the CPU model's detections inside the image; returns the set and its thresholds."""
    with torch.no_grad():
        outputs = bench.cpu_model(train=False)(images.images)
    conf_thre = score_threshold(outputs)
    detections = postprocess(outputs, bench.model.head.num_classes, conf_thre, NMS_THRE)
    ann_path = root / "annotations" / ANN_FILE
    coco = json.loads(ann_path.read_text())
    annotations = []
    for info, rows in zip(coco["images"], detections):
        boxes = torch.zeros(0, 4) if rows is None else rows[:MAX_DETS, :4].clamp(0, IMG_SIZE)
        for x1, y1, x2, y2 in boxes[((boxes[:, 2:] - boxes[:, :2]) >= 1).all(dim=1)].tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": info["id"], "category_id": 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    coco["annotations"] = annotations
    ann_path.write_text(json.dumps(coco))
    return EvalSet(root, conf_thre)


class _DeviceSideEvaluator(COCOEvaluator):
    """The COCO evaluator with the injected detection fault applied before collection (the device side only)."""

    def __init__(self, *args, fault=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault

    def convert_to_coco_format(self, outputs: Detections, info_imgs, ids, return_outputs: bool = False):
        outputs = self.fault(list(outputs)) if self.fault is not None else outputs
        return super().convert_to_coco_format(outputs, info_imgs, ids, return_outputs)


def _evaluator(eval_set: EvalSet, num_classes: int, fault=None) -> COCOEvaluator:
    dataset = COCODataset(data_dir=str(eval_set.root), json_file=ANN_FILE, name=SPLIT, img_size=(IMG_SIZE, IMG_SIZE),
                          preproc=ValTransform(legacy=False))
    loader = DataLoader(dataset, batch_size=2, shuffle=False, num_workers=0)
    return _DeviceSideEvaluator(loader, (IMG_SIZE, IMG_SIZE), eval_set.conf_thre, eval_set.nms_thre, num_classes,
                                per_class_AP=False, per_class_AR=False, max_dets=MAX_DETS, fault=fault)


def evaluate_both(bench: Bench, eval_set: EvalSet, amp: Optional[torch.dtype] = None) -> CheckResult:
    """AP@[.5:.95] of one full evaluation on the device and on the CPU (AP50 under mixed precision)."""
    num_classes = bench.model.head.num_classes
    with autocast_for(bench, amp):
        device_ap, device_ap50, _ = _evaluator(eval_set, num_classes, bench.faults.device_detections).evaluate(
            bench.device_model(train=False), policy=bench.policy)
    cpu_ap, cpu_ap50, _ = _evaluator(eval_set, num_classes).evaluate(bench.cpu_model(train=False))
    figures = dict(device_ap=device_ap, cpu_ap=cpu_ap, device_ap50=device_ap50, cpu_ap50=cpu_ap50,
                   conf_thre=eval_set.conf_thre, nms_thre=eval_set.nms_thre)
    if amp is not None:
        return check("evaluation AP50" + precision_suffix(amp), "evaluation", abs(device_ap50 - cpu_ap50), tol.AMP_AP50, True,
                     **figures)
    return check("evaluation AP", "evaluation", abs(device_ap - cpu_ap), tol.AP, **figures)
