"""PASCAL VOC average precision (devkit rules: "+1" pixel areas, difficult objects ignored)."""
import xml.etree.ElementTree as ET
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["parse_voc_objects", "voc_ap", "voc_eval"]


def parse_voc_objects(xml_path: str) -> List[dict]:
    """Objects of a VOC annotation: name, difficult flag and the xml's (1-based) pixel box."""
    objects = []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        difficult = obj.find("difficult")
        box = obj.find("bndbox")
        objects.append({
            "name": obj.find("name").text.strip(),
            "difficult": difficult is not None and int(difficult.text) == 1,
            "bbox": [int(float(box.find(tag).text)) for tag in ("xmin", "ymin", "xmax", "ymax")],
        })
    return objects


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool = False) -> float:
    """Area under the precision/recall curve: 11-point interpolation (VOC2007) or exact (VOC2010+)."""
    if use_07_metric:
        points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.arange(0.0, 1.1, 0.1)]
        return float(np.sum(points) / 11.0)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope: best precision at >= recall
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def _overlaps(box: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    inter_w = np.maximum(np.minimum(gt_boxes[:, 2], box[2]) - np.maximum(gt_boxes[:, 0], box[0]) + 1.0, 0.0)
    inter_h = np.maximum(np.minimum(gt_boxes[:, 3], box[3]) - np.maximum(gt_boxes[:, 1], box[1]) + 1.0, 0.0)
    inter = inter_w * inter_h
    union = ((box[2] - box[0] + 1.0) * (box[3] - box[1] + 1.0)
             + (gt_boxes[:, 2] - gt_boxes[:, 0] + 1.0) * (gt_boxes[:, 3] - gt_boxes[:, 1] + 1.0) - inter)
    return inter / union


def voc_eval(detections: Sequence[Tuple[str, float, Sequence[float]]], objects: Dict[str, List[dict]],
             classname: str, iou_thresh: float = 0.5, use_07_metric: bool = False) -> Tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, AP) of one class.

    detections: (image key, score, 1-based x1, y1, x2, y2 box) of this class; objects: per image key,
    the parsed annotation objects. A detection is a true positive when its best-overlap gt
    (IoU > iou_thresh) is not difficult and not matched yet; best overlaps on difficult gts count
    neither way.
    """
    gts = {}
    num_positives = 0
    for key, image_objects in objects.items():
        of_class = [obj for obj in image_objects if obj["name"] == classname]
        difficult = np.array([obj["difficult"] for obj in of_class], dtype=bool)
        boxes = np.array([obj["bbox"] for obj in of_class], dtype=float).reshape(-1, 4)
        gts[key] = (boxes, difficult, np.zeros(len(of_class), dtype=bool))
        num_positives += int((~difficult).sum())

    order = np.argsort([-score for _, score, _ in detections], kind="mergesort")
    true_pos = np.zeros(len(order))
    false_pos = np.zeros(len(order))
    for rank, index in enumerate(order):
        key, _, box = detections[index]
        boxes, difficult, taken = gts[key]
        best_iou, best = -np.inf, -1
        if len(boxes):
            ious = _overlaps(np.asarray(box, dtype=float), boxes)
            best, best_iou = int(np.argmax(ious)), float(np.max(ious))
        if best_iou <= iou_thresh:
            false_pos[rank] = 1
        elif not difficult[best]:
            if taken[best]:
                false_pos[rank] = 1
            else:
                true_pos[rank] = 1
                taken[best] = True

    true_pos, false_pos = np.cumsum(true_pos), np.cumsum(false_pos)
    precision = true_pos / np.maximum(true_pos + false_pos, np.finfo(np.float64).eps)
    if num_positives == 0:  # no ground truth of this class: AP undefined, left out of the mean
        return np.zeros_like(true_pos), precision, float("nan")
    recall = true_pos / num_positives
    return recall, precision, voc_ap(recall, precision, use_07_metric)
