"""Box format conversions, IoU matrices and detection post-processing (score threshold + NMS)."""
from typing import List, NamedTuple, Optional, Tuple

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


# With max_dets, at first only the PRE_NMS_PER_DET * max_dets best candidates of an image enter NMS.
PRE_NMS_PER_DET = 10


def postprocess(
    prediction: torch.Tensor,
    num_classes: int,
    conf_thre: float = 0.7,
    nms_thre: float = 0.45,
    class_agnostic: bool = False,
    max_dets: Optional[int] = None,
) -> List[Optional[torch.Tensor]]:
    """Per image: best class per anchor, obj*cls >= conf_thre, then NMS, over the whole batch in one call.

    `prediction` is [B, N, 5+C] decoded eval output; its columns 0-3 are converted to xyxy in place.
    Returns B entries, each None or [k, 7] rows (x1, y1, x2, y2, obj, cls_conf, cls_id) by descending score,
    equal scores in anchor order. With `max_dets`, each image keeps at most max_dets rows per class (the
    detections COCOeval scores), and only the PRE_NMS_PER_DET * max_dets best candidates of an image enter NMS
    unless that leaves a class short of max_dets survivors while candidates of it were dropped: such an image
    is redone with all its candidates, so the capped output is the uncapped one with each class cut to its first
    max_dets rows.
    """
    _corners_in_place(prediction)
    cls_conf, cls_pred = prediction[..., 5 : 5 + num_classes].max(dim=-1, keepdim=True)
    candidates = torch.cat([prediction[..., :5], cls_conf, cls_pred.to(prediction.dtype)], dim=-1)
    product = prediction[..., 4] * cls_conf.squeeze(-1)
    # NMS kernels lack bfloat16 (and half on the CPU): rank and compare in float32 whatever the model ran in.
    batch = _Candidates(candidates, product.float(), product >= conf_thre, cls_pred.squeeze(-1), num_classes)
    limit = None if max_dets is None else PRE_NMS_PER_DET * max_dets
    output, short = _nms_round(batch, nms_thre, class_agnostic, max_dets, limit)
    redo = short.nonzero().flatten().tolist()
    if redo:
        again, _ = _nms_round(batch.images(redo), nms_thre, class_agnostic, max_dets, None)
        for index, rows in zip(redo, again):
            output[index] = rows
    return output


class _Candidates(NamedTuple):
    """[B, N] views of one batch's anchors: rows [B, N, 7], float32 scores, threshold mask, class index."""

    rows: torch.Tensor
    scores: torch.Tensor
    passing: torch.Tensor
    classes: torch.Tensor
    num_classes: int

    def images(self, indices: List[int]) -> "_Candidates":
        pick = torch.tensor(indices, device=self.rows.device)
        return _Candidates(self.rows[pick], self.scores[pick], self.passing[pick], self.classes[pick],
                           self.num_classes)

    def class_groups(self, image_index: torch.Tensor, anchor_index: torch.Tensor) -> torch.Tensor:
        """Image-and-class group id of the given anchors."""
        return image_index * self.num_classes + self.classes[image_index, anchor_index]


def _nms_round(batch: _Candidates, nms_thre: float, class_agnostic: bool, max_dets: Optional[int],
               limit: Optional[int]) -> Tuple[List[Optional[torch.Tensor]], torch.Tensor]:
    """Per-image outputs from at most `limit` best candidates per image, and which images came out short."""
    num_images = batch.rows.shape[0]
    counts = batch.passing.sum(dim=1)
    width = int(counts.max()) if num_images else 0
    short = torch.zeros(num_images, dtype=torch.bool, device=batch.rows.device)
    if width == 0:
        return [None] * num_images, short
    take = width if limit is None else min(limit, width)
    ranked = torch.where(batch.passing, batch.scores, float("-inf")).sort(dim=1, descending=True, stable=True)
    in_top = torch.arange(take, device=counts.device)[None, :] < counts[:, None]
    image_index = torch.arange(num_images, device=counts.device)[:, None].expand(-1, take)[in_top]
    anchor_index = ranked.indices[:, :take][in_top]
    groups = batch.class_groups(image_index, anchor_index)
    nms_groups = image_index if class_agnostic else groups
    kept = torchvision.ops.batched_nms(batch.rows[image_index, anchor_index, :4].float(),
                                       batch.scores[image_index, anchor_index], nms_groups, nms_thre)
    # back to image-major, score-then-anchor order, which batched_nms does not keep for equal scores
    kept = kept.sort().values
    if max_dets is not None:
        if take < width:
            short = _short_images(batch, groups, groups[kept], max_dets)
        kept = kept[_rank_in_group(groups[kept]) < max_dets]
    rows = batch.rows[image_index[kept], anchor_index[kept]]
    per_image = torch.bincount(image_index[kept], minlength=num_images).tolist()
    return [chunk if len(chunk) else None for chunk in rows.split(per_image)], short


def _rank_in_group(groups: torch.Tensor) -> torch.Tensor:
    """Each element's position among the earlier elements of its group."""
    ordered, order = groups.sort(stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(groups), device=groups.device) - torch.searchsorted(ordered, ordered)
    return rank


def _short_images(batch: _Candidates, top_groups: torch.Tensor, kept_groups: torch.Tensor,
                  max_dets: int) -> torch.Tensor:
    """[B] bool: a class lost candidates to the pre-NMS cap and kept fewer than max_dets after NMS."""
    num_images, num_groups = batch.rows.shape[0], batch.rows.shape[0] * batch.num_classes
    image_index, anchor_index = batch.passing.nonzero(as_tuple=True)
    passing = torch.bincount(batch.class_groups(image_index, anchor_index), minlength=num_groups)
    dropped = passing > torch.bincount(top_groups, minlength=num_groups)
    few = torch.bincount(kept_groups, minlength=num_groups) < max_dets
    return (dropped & few).view(num_images, batch.num_classes).any(dim=1)


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
