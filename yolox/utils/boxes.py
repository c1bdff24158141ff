"""Box format conversions, IoU matrices and detection post-processing (score threshold + NMS)."""
from typing import List, Optional, Tuple

import numpy as np
import torch
import torchvision

__all__ = [
    "filter_box",
    "postprocess",
    "bboxes_iou",
    "matrix_iou",
    "adjust_box_anns",
    "xyxy2xywh",
    "xyxy2cxcywh",
    "cxcywh2xyxy",
]


def filter_box(output: torch.Tensor, scale_range: Tuple[float, float]) -> torch.Tensor:
    """Keep xyxy rows whose area lies strictly between min_scale^2 and max_scale^2."""
    min_scale, max_scale = scale_range
    area = (output[:, 2] - output[:, 0]) * (output[:, 3] - output[:, 1])
    return output[(area > min_scale * min_scale) & (area < max_scale * max_scale)]


def _corners_in_place(prediction: torch.Tensor) -> None:
    """(cx, cy, w, h) -> (x1, y1, x2, y2) on columns 0-3 of [B, N, >=4]."""
    centre, half_wh = prediction[..., :2], prediction[..., 2:4] / 2
    prediction[..., :4] = torch.cat([centre - half_wh, centre + half_wh], dim=-1)


def postprocess(
    prediction: torch.Tensor,
    num_classes: int,
    conf_thre: float = 0.7,
    nms_thre: float = 0.45,
    class_agnostic: bool = False,
) -> List[Optional[torch.Tensor]]:
    """Per image: best class per anchor, obj*cls >= conf_thre, then NMS.

    `prediction` is [B, N, 5+C] decoded eval output; its columns 0-3 are converted to xyxy in place.
    Returns B entries, each None or [k, 7] rows (x1, y1, x2, y2, obj, cls_conf, cls_id) by descending score.
    """
    _corners_in_place(prediction)
    cls_conf, cls_pred = prediction[..., 5 : 5 + num_classes].max(dim=-1, keepdim=True)
    candidates = torch.cat([prediction[..., :5], cls_conf, cls_pred.to(prediction.dtype)], dim=-1)
    keep_mask = prediction[..., 4] * cls_conf.squeeze(-1) >= conf_thre

    output: List[Optional[torch.Tensor]] = [None] * prediction.shape[0]
    for i, (image_rows, image_keep) in enumerate(zip(candidates, keep_mask)):
        detections = image_rows[image_keep]
        if detections.shape[0] == 0:
            continue
        # NMS kernels lack bfloat16 (and half on the CPU): rank and compare in float32 whatever the model ran in.
        boxes, scores = detections[:, :4].float(), (detections[:, 4] * detections[:, 5]).float()
        if class_agnostic:
            kept = torchvision.ops.nms(boxes, scores, nms_thre)
        else:
            kept = torchvision.ops.batched_nms(boxes, scores, detections[:, 6], nms_thre)
        output[i] = detections[kept]
    return output


def bboxes_iou(bboxes_a: torch.Tensor, bboxes_b: torch.Tensor, xyxy: bool = True) -> torch.Tensor:
    """[n_a, n_b] IoU of two box sets, xyxy or (cx, cy, w, h) when xyxy is False."""
    if bboxes_a.shape[1] != 4 or bboxes_b.shape[1] != 4:
        raise IndexError(f"bboxes_iou needs [n, 4] boxes, got {tuple(bboxes_a.shape)} and {tuple(bboxes_b.shape)}")
    if xyxy:
        a_tl, a_br = bboxes_a[:, :2], bboxes_a[:, 2:]
        b_tl, b_br = bboxes_b[:, :2], bboxes_b[:, 2:]
    else:
        a_tl, a_br = bboxes_a[:, :2] - bboxes_a[:, 2:] / 2, bboxes_a[:, :2] + bboxes_a[:, 2:] / 2
        b_tl, b_br = bboxes_b[:, :2] - bboxes_b[:, 2:] / 2, bboxes_b[:, :2] + bboxes_b[:, 2:] / 2
    area_a = torch.prod(a_br - a_tl, 1)
    area_b = torch.prod(b_br - b_tl, 1)
    tl = torch.max(a_tl[:, None, :], b_tl)
    br = torch.min(a_br[:, None, :], b_br)
    overlaps = (tl < br).to(tl.dtype).prod(dim=2)
    area_i = torch.prod(br - tl, 2) * overlaps
    return area_i / (area_a[:, None] + area_b - area_i)


def matrix_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[n_a, n_b] IoU of xyxy NumPy boxes."""
    tl = np.maximum(a[:, np.newaxis, :2], b[:, :2])
    br = np.minimum(a[:, np.newaxis, 2:], b[:, 2:])
    area_i = np.prod(br - tl, axis=2) * (tl < br).all(axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return area_i / (area_a[:, np.newaxis] + area_b - area_i + 1e-12)


def adjust_box_anns(
    bbox: np.ndarray, scale_ratio: float, padw: float, padh: float, w_max: float, h_max: float
) -> np.ndarray:
    """Scale and shift xyxy boxes in place, clipping x to [0, w_max] and y to [0, h_max]."""
    bbox[:, 0::2] = np.clip(bbox[:, 0::2] * scale_ratio + padw, 0, w_max)
    bbox[:, 1::2] = np.clip(bbox[:, 1::2] * scale_ratio + padh, 0, h_max)
    return bbox


def xyxy2xywh(bboxes):
    """(x1, y1, x2, y2) -> (x1, y1, w, h) in place on the first 4 columns."""
    bboxes[:, 2] = bboxes[:, 2] - bboxes[:, 0]
    bboxes[:, 3] = bboxes[:, 3] - bboxes[:, 1]
    return bboxes


def xyxy2cxcywh(bboxes):
    """(x1, y1, x2, y2) -> (cx, cy, w, h) in place on the first 4 columns."""
    xyxy2xywh(bboxes)
    bboxes[:, 0] = bboxes[:, 0] + bboxes[:, 2] * 0.5
    bboxes[:, 1] = bboxes[:, 1] + bboxes[:, 3] * 0.5
    return bboxes


def cxcywh2xyxy(bboxes):
    """(cx, cy, w, h) -> (x1, y1, x2, y2) in place on the first 4 columns."""
    bboxes[:, 0] = bboxes[:, 0] - bboxes[:, 2] * 0.5
    bboxes[:, 1] = bboxes[:, 1] - bboxes[:, 3] * 0.5
    bboxes[:, 2] = bboxes[:, 0] + bboxes[:, 2]
    bboxes[:, 3] = bboxes[:, 1] + bboxes[:, 3]
    return bboxes
