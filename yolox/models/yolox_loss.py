"""YOLOX training loss: SimOTA targets, then IoU, objectness, classification and L1 terms.

Positives are selected with masks over all anchors instead of boolean indexing, so the loss
needs no host synchronisation; non-positive anchors contribute exact zeros.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .assignment import CENTER_RADIUS, simota_assign

REG_WEIGHT = 5.0
L1_EPS = 1e-8


def l1_targets(gt_boxes: Tensor, x_shifts: Tensor, y_shifts: Tensor, expanded_strides: Tensor) -> Tensor:
    """Raw regression targets (gt/stride - grid, log(gt/stride + eps)) for [B, A, 4] matched gt boxes."""
    strides = expanded_strides[..., None].float()
    scaled = gt_boxes.float() / strides
    grid = torch.stack([x_shifts, y_shifts], dim=-1).float()
    return torch.cat([scaled[..., :2] - grid, torch.log(scaled[..., 2:] + L1_EPS)], dim=-1)


def compute_losses(
    outputs: Tensor,
    labels: Tensor,
    x_shifts: Tensor,
    y_shifts: Tensor,
    expanded_strides: Tensor,
    origin_preds: Optional[Tensor],
    num_classes: int,
    use_l1: bool,
    iou_loss: nn.Module,
    center_radius: float = CENTER_RADIUS,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(total, 5 * iou, obj, cls, l1, positives per gt) for a train-mode head output.

    outputs: [B, A, 5+C] decoded boxes with obj/cls logits; labels: [B, M, 5] (class, cx, cy, w, h);
    shifts and strides: [1, A]; origin_preds: [B, A, 4] raw regression (needed when use_l1).
    """
    if use_l1 and origin_preds is None:
        raise ValueError("compute_losses: use_l1 is on but the head passed no origin_preds")
    assignment = simota_assign(outputs, labels, x_shifts, y_shifts, expanded_strides, center_radius=center_radius)
    positive = assignment.fg_mask[..., None]
    num_fg = assignment.fg_mask.sum()
    normalizer = num_fg.clamp(min=1)
    matched_boxes = torch.gather(labels[..., 1:5], 1, assignment.matched_gt_inds[..., None].expand(-1, -1, 4))

    # Non-positive anchors compare a unit box with itself: IoU 1, loss exactly 0. Built with a fill,
    # not from a Python list, which would be a blocking host-to-device copy.
    neutral = outputs.new_ones(4)
    pred_boxes = torch.where(positive, outputs[..., :4], neutral)
    reg_targets = torch.where(positive, matched_boxes.to(outputs.dtype), neutral)
    loss_iou = iou_loss(pred_boxes.reshape(-1, 4), reg_targets.reshape(-1, 4)).sum() / normalizer

    obj_targets = assignment.fg_mask.to(outputs.dtype)[..., None]
    loss_obj = F.binary_cross_entropy_with_logits(outputs[..., 4:5], obj_targets, reduction="sum") / normalizer

    # one_hot compared against arange: F.one_hot reads class values back to the host on some devices
    classes = torch.arange(num_classes, device=outputs.device)
    cls_targets = (assignment.matched_classes[..., None] == classes) * assignment.matched_ious[..., None]
    cls_bce = F.binary_cross_entropy_with_logits(outputs[..., 5:], cls_targets.to(outputs.dtype), reduction="none")
    loss_cls = torch.where(positive, cls_bce, 0.0).sum() / normalizer

    if use_l1:
        targets = l1_targets(matched_boxes, x_shifts, y_shifts, expanded_strides)
        l1 = F.l1_loss(origin_preds, targets.to(origin_preds.dtype), reduction="none")
        loss_l1 = torch.where(positive, l1, 0.0).sum() / normalizer
    else:
        loss_l1 = outputs.new_zeros((), dtype=torch.float32)

    total = REG_WEIGHT * loss_iou + loss_obj + loss_cls + loss_l1
    fg_per_gt = num_fg.float() / assignment.num_gt.sum().clamp(min=1).float()
    return total, REG_WEIGHT * loss_iou, loss_obj, loss_cls, loss_l1, fg_per_gt
