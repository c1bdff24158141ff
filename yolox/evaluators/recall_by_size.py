"""Recall by object diameter: how many small craters a detector finds, beside COCO's AP.

Each image's detections (highest score first, at most max_dets) are matched one-to-one to its
ground truths at IoU >= iou_thr, each detection taking the best still unmatched gt, as COCO does
at one IoU threshold. A gt's diameter is the longer side of its box in image pixels.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
from tabulate import tabulate

DIAMETER_EDGES = (8, 16, 32, 64)


def _xyxy(xywh: np.ndarray) -> np.ndarray:
    return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)


def _iou(dets: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """[D, G] IoU of xyxy boxes."""
    low = np.maximum(dets[:, None, :2], gts[None, :, :2])
    high = np.minimum(dets[:, None, 2:], gts[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_d = np.prod(dets[:, 2:] - dets[:, :2], axis=1)
    area_g = np.prod(gts[:, 2:] - gts[:, :2], axis=1)
    return inter / np.maximum(area_d[:, None] + area_g[None, :] - inter, 1e-12)


def matched_gts(det_xywh: np.ndarray, scores: np.ndarray, gt_xywh: np.ndarray, iou_thr: float, max_dets: int) -> np.ndarray:
    """[G] bool: which gts a detection matched (greedy by score, one detection per gt)."""
    found = np.zeros(len(gt_xywh), bool)
    if len(det_xywh) == 0 or len(gt_xywh) == 0:
        return found
    order = np.argsort(-scores, kind="stable")[:max_dets]
    ious = _iou(_xyxy(det_xywh[order]), _xyxy(gt_xywh))
    for row in ious:
        row = np.where(found, -1.0, row)
        best = int(row.argmax())
        if row[best] >= iou_thr:
            found[best] = True
    return found


def bin_labels(edges: Sequence[float] = DIAMETER_EDGES) -> List[str]:
    inner = [f"{low:g}-{high:g}" for low, high in zip(edges[:-1], edges[1:])]
    return [f"<{edges[0]:g}", *inner, f">{edges[-1]:g}"]


def recall_by_diameter(coco_gt, data_list: List[dict], max_dets: int, iou_thr: float = 0.5,
                       edges: Sequence[float] = DIAMETER_EDGES) -> Dict[str, Tuple[int, int]]:
    """{bin label: (gts found, gts)} over all images and classes of a pycocotools COCO ground truth."""
    by_key: Dict[tuple, List[dict]] = {}
    for record in data_list:
        by_key.setdefault((record["image_id"], record["category_id"]), []).append(record)
    found_per_bin, total_per_bin = np.zeros(len(edges) + 1, int), np.zeros(len(edges) + 1, int)
    for image_id in coco_gt.getImgIds():
        anns = [a for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id], iscrowd=False))]
        for category in {a["category_id"] for a in anns}:
            gts = np.array([a["bbox"] for a in anns if a["category_id"] == category], float).reshape(-1, 4)
            dets = by_key.get((image_id, category), [])
            det_boxes = np.array([d["bbox"] for d in dets], float).reshape(-1, 4)
            found = matched_gts(det_boxes, np.array([d["score"] for d in dets], float), gts, iou_thr, max_dets)
            bins = np.digitize(gts[:, 2:].max(axis=1), edges)
            np.add.at(total_per_bin, bins, 1)
            np.add.at(found_per_bin, bins, found.astype(int))
    return {label: (int(f), int(t)) for label, f, t in zip(bin_labels(edges), found_per_bin, total_per_bin)}


def recall_table(recalls: Dict[str, Tuple[int, int]], iou_thr: float = 0.5) -> str:
    """Pipe table: diameter bin (px), gts, found, recall (nan for an empty bin)."""
    rows = [(label, total, found, found / total if total else float("nan")) for label, (found, total) in recalls.items()]
    return tabulate(rows, headers=["diameter px", "gts", "found", f"recall@{iou_thr:g}"], tablefmt="pipe",
                    floatfmt=".3f", numalign="left")
