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


def recall_by_diameter(coco_gt, detections: np.ndarray, max_dets: int, iou_thr: float = 0.5,
                       edges: Sequence[float] = DIAMETER_EDGES) -> Dict[str, Tuple[int, int]]:
    """{bin label: (gts found, gts)} over all images and classes of a pycocotools COCO ground truth.

    detections: [n, 7] COCO result rows (image_id, x, y, w, h, score, category_id).
    """
    by_key = _rows_by_image_and_class(detections)
    found_per_bin, total_per_bin = np.zeros(len(edges) + 1, int), np.zeros(len(edges) + 1, int)
    empty = np.zeros((0, 7))
    for image_id in coco_gt.getImgIds():
        anns = [a for a in coco_gt.loadAnns(coco_gt.getAnnIds(imgIds=[image_id], iscrowd=False))]
        for category in {a["category_id"] for a in anns}:
            gts = np.array([a["bbox"] for a in anns if a["category_id"] == category], float).reshape(-1, 4)
            dets = by_key.get((image_id, category), empty)
            found = matched_gts(dets[:, 1:5], dets[:, 5], gts, iou_thr, max_dets)
            bins = np.digitize(gts[:, 2:].max(axis=1), edges)
            np.add.at(total_per_bin, bins, 1)
            np.add.at(found_per_bin, bins, found.astype(int))
    return {label: (int(f), int(t)) for label, f, t in zip(bin_labels(edges), found_per_bin, total_per_bin)}


def _rows_by_image_and_class(detections: np.ndarray) -> Dict[Tuple[int, int], np.ndarray]:
    """{(image id, category id): its rows, in their original order}."""
    keys = detections[:, [0, 6]].astype(np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    pairs, starts = np.unique(keys[order], axis=0, return_index=True)
    ends = np.r_[starts[1:], len(order)]
    return {(int(image_id), int(category)): detections[order[start:end]]
            for (image_id, category), start, end in zip(pairs, starts, ends)}


def recall_table(recalls: Dict[str, Tuple[int, int]], iou_thr: float = 0.5) -> str:
    """Pipe table: diameter bin (px), gts, found, recall (nan for an empty bin)."""
    rows = [(label, total, found, found / total if total else float("nan")) for label, (found, total) in recalls.items()]
    return tabulate(rows, headers=["diameter px", "gts", "found", f"recall@{iou_thr:g}"], tablefmt="pipe",
                    floatfmt=".3f", numalign="left")
