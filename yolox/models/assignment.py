"""Batched SimOTA label assignment (upstream's current rule) over padded ground truths.

The whole batch is assigned at once: no Python loop over images or ground truths and no
host synchronisation. Pairwise [images, gts, anchors] work is split into chunks whose size
depends only on tensor shapes, so memory stays bounded for images with thousands of gts.
"""
import contextlib
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from torch import Tensor

CENTER_RADIUS = 1.5
OUTSIDE_CENTER_PENALTY = 1e6
IOU_COST_WEIGHT = 3.0
MAX_CANDIDATES_FOR_K = 10
BCE_LOG_CLAMP = -100.0
# Largest [images x gts x anchors] block processed at once (about 20 bytes of temporaries each).
DEFAULT_MAX_PAIR_ELEMENTS = 1 << 24


@dataclass
class SimOTAAssignment:
    """Per-anchor assignment of a batch. Entries of non-positive anchors are 0."""

    fg_mask: Tensor  # [B, A] bool, positive anchors
    matched_gt_inds: Tensor  # [B, A] int64, label row each positive is assigned to
    matched_classes: Tensor  # [B, A] int64, class of that label
    matched_ious: Tensor  # [B, A] float32, IoU of the positive's predicted box with its gt
    num_gt: Tensor  # [B] int64, ground truths per image
    dynamic_ks: Tensor  # [B, M] int64, anchors each gt asked for (0 for padding rows)


@dataclass
class _ChunkMatches:
    """Partial results of one block of gts: per-anchor pick counts and cheapest gt."""

    pick_count: Tensor  # [b, A] number of gts that picked the anchor
    picker_sum: Tensor  # [b, A] sum of the indices of those gts (the picker when count is 1)
    best_cost: Tensor  # [b, A] lowest cost over the block's gts
    best_gt: Tensor  # [b, A] gt index of that lowest cost
    dynamic_ks: Tensor  # [b, g]


def count_gts(labels: Tensor) -> Tensor:
    """Ground truths per image: label rows whose five values sum to more than zero."""
    return (labels.sum(dim=2) > 0).sum(dim=1)


def gt_valid_mask(labels: Tensor) -> Tensor:
    """[B, M] mask of the rows taken as gts: the first num_gt rows of each image."""
    rows = torch.arange(labels.shape[1], device=labels.device)
    return rows[None, :] < count_gts(labels)[:, None]


def box_iou_cxcywh(gt_boxes: Tensor, pred_boxes: Tensor) -> Tensor:
    """IoU of broadcastable (cx, cy, w, h) box sets, without epsilon (as the assigner uses it)."""
    overlap = None
    for axis in range(2):
        gt_half, pred_half = gt_boxes[..., axis + 2] / 2, pred_boxes[..., axis + 2] / 2
        low = torch.max(gt_boxes[..., axis] - gt_half, pred_boxes[..., axis] - pred_half)
        side = torch.min(gt_boxes[..., axis] + gt_half, pred_boxes[..., axis] + pred_half)
        side = side.sub_(low).clamp_(min=0)
        overlap = side if overlap is None else overlap.mul_(side)
    area_gt = gt_boxes[..., 2] * gt_boxes[..., 3]
    area_pred = pred_boxes[..., 2] * pred_boxes[..., 3]
    return overlap.div_((area_gt + area_pred).sub_(overlap))


def _in_center_window(gt_centers: Tensor, anchor_centers: Tensor, strides: Tensor,
                      center_radius: float = CENTER_RADIUS) -> Tensor:
    """[b, g, A] whether each anchor centre lies strictly inside each gt's square of half-side
    `center_radius` strides (upstream: 1.5).

    A float difference a - b is positive exactly when a > b, so comparing against the rounded
    window edges gives the same answer as testing the four offsets for positivity.
    """
    radius = strides * center_radius
    inside: Optional[Tensor] = None
    for axis in range(2):
        gt_c, anchor_c = gt_centers[..., axis, None], anchor_centers[:, axis]
        axis_inside = torch.gt(anchor_c, gt_c - radius)
        axis_inside &= torch.gt(gt_c + radius, anchor_c)
        inside = axis_inside if inside is None else inside.logical_and_(axis_inside)
    return inside


def _class_cost_terms(obj_logits: Tensor, cls_logits: Tensor) -> tuple[Tensor, Tensor]:
    """BCE of p = sqrt(sigmoid(cls) * sigmoid(obj)) against one-hot targets, split so the [gts, anchors]
    cost is one row gather: per-anchor sum over classes of the negative term [b, A], and per class
    the positive minus the negative term [b, C, A] (added where the class is the gt's)."""
    probs = (cls_logits.sigmoid() * obj_logits.sigmoid()[..., None]).sqrt_()
    negative = torch.log1p(-probs).clamp_(min=BCE_LOG_CLAMP).neg_()
    positive = torch.log(probs).clamp_(min=BCE_LOG_CLAMP).neg_()
    return negative.sum(dim=2), positive.sub_(negative).transpose(1, 2).contiguous()


def _plan_chunks(num_images: int, num_rows: int, num_anchors: int, max_elements: int) -> Iterator[tuple[slice, list[slice]]]:
    """(image slice, gt slices) blocks of at most about max_elements pairwise entries each."""
    per_image = num_rows * num_anchors
    if per_image <= max_elements:
        step = max(max_elements // max(per_image, 1), 1)
        for start in range(0, num_images, step):
            yield slice(start, start + step), [slice(0, num_rows)]
        return
    max_step = max(max_elements // num_anchors, 1)
    gt_step = -(-num_rows // -(-num_rows // max_step))  # equal slices, none above max_step
    gt_slices = [slice(start, start + gt_step) for start in range(0, num_rows, gt_step)]
    for image in range(num_images):
        yield slice(image, image + 1), gt_slices


def _match_gt_block(
    pred_boxes: Tensor,
    class_terms: tuple[Tensor, Tensor],
    gt_boxes: Tensor,
    gt_classes: Tensor,
    gt_valid: Tensor,
    in_center: Tensor,
    candidates: Tensor,
    first_gt: int,
) -> _ChunkMatches:
    """SimOTA cost, dynamic k and per-gt picks for a [b, g] block of gts against all anchors."""
    negative_sum, class_correction = class_terms
    num_images, num_classes, num_anchors = class_correction.shape
    rows = gt_classes + torch.arange(num_images, device=gt_classes.device)[:, None] * num_classes
    cost = class_correction.reshape(-1, num_anchors).index_select(0, rows.flatten()).reshape(*rows.shape, num_anchors)
    cost.add_(negative_sum[:, None, :])

    ious = box_iou_cxcywh(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :])
    cost.add_(torch.add(ious, 1e-8).log_().mul_(-IOU_COST_WEIGHT))
    cost.add_((~in_center).float(), alpha=OUTSIDE_CENTER_PENALTY)
    cost.masked_fill_(~(candidates[:, None, :] & gt_valid[:, :, None]), float("inf"))

    # Non-candidates must not enter the top-k IoU sum; zeros there leave it unchanged.
    ious.masked_fill_(~candidates[:, None, :], 0.0)
    num_k = min(MAX_CANDIDATES_FOR_K, ious.shape[2])
    dynamic_ks = ious.topk(num_k, dim=2).values.sum(dim=2).int().clamp_(min=1).long()
    dynamic_ks.masked_fill_(~gt_valid, 0)
    del ious

    pick_cost, pick_anchor = cost.topk(num_k, dim=2, largest=False)
    rank = torch.arange(num_k, device=cost.device)
    picked = ((rank < dynamic_ks[:, :, None]) & torch.isfinite(pick_cost)).long()
    gt_index = torch.arange(first_gt, first_gt + gt_boxes.shape[1], device=cost.device)
    pick_count = picked.new_zeros(cost.shape[0], cost.shape[2])
    pick_count.scatter_add_(1, pick_anchor.flatten(1), picked.flatten(1))
    picker_sum = torch.zeros_like(pick_count)
    picker_sum.scatter_add_(1, pick_anchor.flatten(1), (picked * gt_index[None, :, None]).flatten(1))

    best_cost, best_gt = cost.min(dim=1)
    return _ChunkMatches(pick_count, picker_sum, best_cost, best_gt + first_gt, dynamic_ks)


def _assign_images(
    pred_boxes: Tensor,
    class_terms: tuple[Tensor, Tensor],
    gt_boxes: Tensor,
    gt_classes: Tensor,
    gt_valid: Tensor,
    anchor_centers: Tensor,
    strides: Tensor,
    gt_slices: list[slice],
    center_radius: float = CENTER_RADIUS,
) -> _ChunkMatches:
    """Matches for a few images, their gts taken one slice at a time."""

    def window(gts: slice) -> Tensor:
        inside = _in_center_window(gt_boxes[:, gts, :2], anchor_centers, strides, center_radius)
        return inside.logical_and_(gt_valid[:, gts, None])

    # Candidates depend on every gt of the image, so split images need a first pass over the gts.
    first_window = window(gt_slices[0])
    candidates = first_window.any(dim=1)
    for gts in gt_slices[1:]:
        candidates |= window(gts).any(dim=1)
    blocks = [
        _match_gt_block(
            pred_boxes,
            class_terms,
            gt_boxes[:, gts],
            gt_classes[:, gts],
            gt_valid[:, gts],
            first_window if index == 0 else window(gts),
            candidates,
            gts.start,
        )
        for index, gts in enumerate(gt_slices)
    ]
    return _merge_gt_blocks(blocks)


def _merge_gt_blocks(blocks: list[_ChunkMatches]) -> _ChunkMatches:
    """Combine blocks over the gts of the same images (the earlier gt wins cost ties)."""
    merged = blocks[0]
    for block in blocks[1:]:
        cheaper = block.best_cost < merged.best_cost
        merged = _ChunkMatches(
            merged.pick_count + block.pick_count,
            merged.picker_sum + block.picker_sum,
            torch.where(cheaper, block.best_cost, merged.best_cost),
            torch.where(cheaper, block.best_gt, merged.best_gt),
            torch.cat([merged.dynamic_ks, block.dynamic_ks], dim=1),
        )
    return merged


def _anchor_geometry(x_shifts: Tensor, y_shifts: Tensor, expanded_strides: Tensor) -> tuple[Tensor, Tensor]:
    """Anchor centres [A, 2] in input pixels and strides [A], in float32."""
    strides = expanded_strides.reshape(-1).float()
    centers = torch.stack([x_shifts.reshape(-1).float(), y_shifts.reshape(-1).float()], dim=1)
    return (centers + 0.5) * strides[:, None], strides


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast so the costs are computed in float32 (devices without autocast need nothing)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


@torch.no_grad()
def simota_assign(
    outputs: Tensor,
    labels: Tensor,
    x_shifts: Tensor,
    y_shifts: Tensor,
    expanded_strides: Tensor,
    max_pair_elements: Optional[int] = None,
    center_radius: float = CENTER_RADIUS,
) -> SimOTAAssignment:
    """Assign anchors to ground truths for a whole batch.

    outputs: [B, A, 5+C] train-mode head output (decoded cx, cy, w, h; obj and cls logits).
    labels: [B, M, 5] rows (class, cx, cy, w, h), valid rows first, zero padding.
    x_shifts, y_shifts, expanded_strides: [1, A] anchor grid column, row and stride.
    center_radius: half-side, in strides, of the window around a gt centre where anchors are candidates.
    """
    num_images, num_anchors = outputs.shape[:2]
    num_rows = labels.shape[1]
    if num_rows == 0:
        return _no_labels(outputs, labels)
    budget = max_pair_elements or DEFAULT_MAX_PAIR_ELEMENTS
    with _autocast_off(outputs.device):
        pred_boxes = outputs[..., :4].float()
        gt_boxes = labels[..., 1:5].float()
        gt_classes = labels[..., 0].long()
        gt_valid = gt_valid_mask(labels)
        anchor_centers, strides = _anchor_geometry(x_shifts, y_shifts, expanded_strides)
        image_results = [
            _assign_images(
                pred_boxes[images],
                _class_cost_terms(outputs[images, :, 4].float(), outputs[images, :, 5:].float()),
                gt_boxes[images],
                gt_classes[images],
                gt_valid[images],
                anchor_centers,
                strides,
                gt_slices,
                center_radius,
            )
            for images, gt_slices in _plan_chunks(num_images, num_rows, num_anchors, budget)
        ]
        return _finish(image_results, pred_boxes, gt_boxes, gt_classes, gt_valid)


def _finish(
    image_results: list[_ChunkMatches], pred_boxes: Tensor, gt_boxes: Tensor, gt_classes: Tensor, gt_valid: Tensor
) -> SimOTAAssignment:
    """Resolve anchors picked by several gts (cheapest gt over all gts wins) and gather results."""
    pick_count = torch.cat([result.pick_count for result in image_results])
    picker = torch.cat([result.picker_sum for result in image_results])
    cheapest = torch.cat([result.best_gt for result in image_results])
    fg_mask = pick_count > 0
    matched = torch.where(pick_count > 1, cheapest, picker)
    matched_boxes = torch.gather(gt_boxes, 1, matched[..., None].expand(-1, -1, 4))
    return SimOTAAssignment(
        fg_mask=fg_mask,
        matched_gt_inds=matched,
        matched_classes=torch.gather(gt_classes, 1, matched).masked_fill_(~fg_mask, 0),
        matched_ious=box_iou_cxcywh(matched_boxes, pred_boxes).masked_fill_(~fg_mask, 0.0),
        num_gt=gt_valid.sum(dim=1),
        dynamic_ks=torch.cat([result.dynamic_ks for result in image_results]),
    )


def _no_labels(outputs: Tensor, labels: Tensor) -> SimOTAAssignment:
    """Assignment of a batch whose label tensor has no rows: nothing is positive."""
    zeros = outputs.new_zeros(outputs.shape[:2], dtype=torch.int64)
    return SimOTAAssignment(zeros.bool(), zeros, zeros, zeros.float(), zeros[:, 0], zeros[:, :0])
