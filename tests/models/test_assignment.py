"""Batched SimOTA against a plain per-image reference written from upstream YOLOX's per-image SimOTA."""
import math
from typing import Optional

import pytest
import torch
import torch.nn.functional as F

from yolox.models.assignment import _plan_chunks, simota_assign

STRIDES = (8, 16, 32)


def anchor_grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_shifts, y_shifts, expanded_strides [1, A] in the head's anchor order."""
    xs, ys, strides = [], [], []
    for stride in STRIDES:
        rows, cols = torch.meshgrid(torch.arange(height // stride), torch.arange(width // stride), indexing="ij")
        xs.append(cols.reshape(-1))
        ys.append(rows.reshape(-1))
        strides.append(torch.full((rows.numel(),), stride))
    return tuple(torch.cat(part).float()[None] for part in (xs, ys, strides))


def synthetic_batch(
    num_gts: list[int], size: int, num_classes: int, seed: int, max_labels: Optional[int] = None
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Random labels and predictions; half of the anchors predict a jittered gt so dynamic k > 1 occurs."""
    gen = torch.Generator().manual_seed(seed)
    grid = anchor_grid(size, size)
    num_anchors = grid[0].shape[1]
    max_labels = max_labels or max(num_gts)
    labels = torch.zeros(len(num_gts), max_labels, 5)
    outputs = torch.empty(len(num_gts), num_anchors, 5 + num_classes)
    anchor_centers = torch.stack([(grid[0][0] + 0.5) * grid[2][0], (grid[1][0] + 0.5) * grid[2][0]], 1)
    for image, count in enumerate(num_gts):
        wh = 8 + torch.rand(count, 2, generator=gen) * (size * 0.25)
        centers = wh / 2 + torch.rand(count, 2, generator=gen) * (size - wh)
        labels[image, :count, 0] = torch.randint(0, num_classes, (count,), generator=gen).float()
        labels[image, :count, 1:3] = centers
        labels[image, :count, 3:5] = wh
        pred_wh = 4 + torch.rand(num_anchors, 2, generator=gen) * (size * 0.25)
        pred_xy = anchor_centers + torch.randn(num_anchors, 2, generator=gen) * grid[2][0, :, None]
        if count:
            copied = torch.randint(0, count, (num_anchors,), generator=gen)
            use_copy = torch.rand(num_anchors, generator=gen) < 0.5
            jitter_xy = centers[copied] + torch.randn(num_anchors, 2, generator=gen) * wh[copied] * 0.1
            jitter_wh = wh[copied] * torch.exp(torch.randn(num_anchors, 2, generator=gen) * 0.1)
            pred_xy = torch.where(use_copy[:, None], jitter_xy, pred_xy)
            pred_wh = torch.where(use_copy[:, None], jitter_wh, pred_wh)
        outputs[image, :, :2] = pred_xy
        outputs[image, :, 2:4] = pred_wh
        outputs[image, :, 4:] = torch.randn(num_anchors, 1 + num_classes, generator=gen) * 2 - 3
    return outputs, labels, grid


def reference_iou(gt: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """[G, N] IoU of (cx, cy, w, h) boxes, as upstream's bboxes_iou(xyxy=False)."""
    top_left = torch.max(gt[:, None, :2] - gt[:, None, 2:] / 2, pred[:, :2] - pred[:, 2:] / 2)
    bottom_right = torch.min(gt[:, None, :2] + gt[:, None, 2:] / 2, pred[:, :2] + pred[:, 2:] / 2)
    overlapping = (top_left < bottom_right).float().prod(dim=2)
    inter = (bottom_right - top_left).prod(dim=2) * overlapping
    return inter / (gt[:, 2:].prod(1)[:, None] + pred[:, 2:].prod(1) - inter)


def reference_assign(outputs: torch.Tensor, labels: torch.Tensor, grid) -> list[dict]:
    """Per-image SimOTA following the spec step by step (loops and syncs allowed here)."""
    x_shifts, y_shifts, strides = (part[0] for part in grid)
    anchor_x, anchor_y = (x_shifts + 0.5) * strides, (y_shifts + 0.5) * strides
    num_classes = outputs.shape[2] - 5
    results = []
    for image in range(outputs.shape[0]):
        num_gt = int((labels[image].sum(1) > 0).sum())
        fg = torch.zeros(outputs.shape[1], dtype=torch.bool, device=outputs.device)
        if num_gt == 0:
            results.append(dict(fg=fg, matched=torch.zeros(0, dtype=torch.long), ious=torch.zeros(0), ks=[]))
            continue
        gt_classes, gt = labels[image, :num_gt, 0].long(), labels[image, :num_gt, 1:5]
        radius = 1.5 * strides
        in_center = (
            (anchor_x - (gt[:, 0:1] - radius) > 0)
            & ((gt[:, 0:1] + radius) - anchor_x > 0)
            & (anchor_y - (gt[:, 1:2] - radius) > 0)
            & ((gt[:, 1:2] + radius) - anchor_y > 0)
        )
        candidates = in_center.any(0)
        relation = in_center[:, candidates]
        preds = outputs[image, candidates]
        ious = reference_iou(gt, preds[:, :4])
        probs = (preds[:, 5:].sigmoid() * preds[:, 4:5].sigmoid()).sqrt()
        cls_cost = torch.stack(
            [
                F.binary_cross_entropy(probs, F.one_hot(c, num_classes).float().expand_as(probs), reduction="none").sum(-1)
                for c in gt_classes
            ]
        )
        cost = cls_cost + 3.0 * -torch.log(ious + 1e-8) + 1e6 * (~relation)
        q = min(10, ious.shape[1])
        dynamic_ks = torch.clamp(ious.topk(q, dim=1).values.sum(1).int(), min=1).tolist()
        matching = torch.zeros_like(cost, dtype=torch.uint8)
        for g, k in enumerate(dynamic_ks):
            matching[g, cost[g].topk(k, largest=False).indices] = 1
        count = matching.sum(0)
        shared = count > 1
        if shared.any():
            winners = cost[:, shared].min(0).indices
            matching[:, shared] = 0
            matching[winners, shared] = 1
        positive = count > 0
        fg[candidates.nonzero()[:, 0][positive]] = True
        results.append(
            dict(
                fg=fg,
                matched=matching[:, positive].argmax(0),
                ious=(matching * ious).sum(0)[positive],
                ks=dynamic_ks,
            )
        )
    return results


def assert_matches_reference(outputs, labels, grid, **kwargs):
    result = simota_assign(outputs, labels, *grid, **kwargs)
    for image, ref in enumerate(reference_assign(outputs, labels, grid)):
        fg = result.fg_mask[image]
        assert torch.equal(fg, ref["fg"]), f"image {image}: fg masks differ"
        assert torch.equal(result.matched_gt_inds[image][fg], ref["matched"]), f"image {image}: matched gts differ"
        torch.testing.assert_close(result.matched_ious[image][fg], ref["ious"], atol=1e-6, rtol=0)
        num_gt = len(ref["ks"])
        assert result.dynamic_ks[image, :num_gt].tolist() == ref["ks"]
        assert int(result.num_gt[image]) == num_gt
    return result


@pytest.mark.parametrize("num_gts", [[300, 120, 0], [1000, 1000]])
def test_batched_equals_reference_on_small_grid(num_gts):
    outputs, labels, grid = synthetic_batch(num_gts, size=128, num_classes=6, seed=len(num_gts))
    result = assert_matches_reference(outputs, labels, grid)
    assert not result.fg_mask[labels[:, :, 3].sum(1) == 0].any()
    assert int(result.fg_mask.sum()) > 0


@pytest.mark.parametrize("num_gt", [300, pytest.param(1000, marks=pytest.mark.slow)])
def test_batched_equals_reference_at_640(num_gt):
    outputs, labels, grid = synthetic_batch([num_gt], size=640, num_classes=3, seed=7)
    result = assert_matches_reference(outputs, labels, grid)
    assert int(result.dynamic_ks.max()) > 1


def test_chunking_over_images_and_gts_gives_identical_results():
    outputs, labels, grid = synthetic_batch([40, 25, 0, 33], size=96, num_classes=4, seed=3)
    whole = simota_assign(outputs, labels, *grid)
    num_anchors = outputs.shape[1]
    for budget in (labels.shape[1] * num_anchors * 2, labels.shape[1] * num_anchors // 3):
        chunked = simota_assign(outputs, labels, *grid, max_pair_elements=budget)
        for name in ("fg_mask", "matched_gt_inds", "matched_classes", "matched_ious", "dynamic_ks"):
            assert torch.equal(getattr(whole, name), getattr(chunked, name)), name


@pytest.mark.parametrize(
    "num_images, num_rows, num_anchors, budget",
    [(8, 1000, 8400, 1 << 24), (8, 120, 8400, 1 << 24), (2, 5000, 8400, 1 << 22), (3, 7, 100, 250), (2, 3, 100, 10)],
)
def test_block_plan_covers_every_pair_once_within_budget(num_images, num_rows, num_anchors, budget):
    covered = []
    for images, gt_slices in _plan_chunks(num_images, num_rows, num_anchors, budget):
        for gts in gt_slices:
            block = [(i, g) for i in range(num_images)[images] for g in range(num_rows)[gts]]
            assert len(block) * num_anchors <= max(budget, num_anchors)
            covered += block
    assert sorted(covered) == [(i, g) for i in range(num_images) for g in range(num_rows)]


def test_padding_rows_follow_the_first_num_gt_rule():
    outputs, labels, grid = synthetic_batch([6], size=64, num_classes=2, seed=5, max_labels=10)
    labels[0, 2] = 0  # a zero row in the middle: upstream counts 5 gts and takes rows 0..4
    result = assert_matches_reference(outputs, labels, grid)
    assert int(result.num_gt[0]) == 5
    assert int(result.matched_gt_inds[0][result.fg_mask[0]].max()) <= 4


def test_conflicting_gts_resolved_by_lowest_cost_over_all_gts():
    outputs, labels, grid = synthetic_batch([2], size=64, num_classes=2, seed=11)
    labels[0, 1] = labels[0, 0]
    labels[0, 1, 3:5] *= 1.25
    outputs[0, :, :4] = labels[0, 0, 1:5]  # every anchor predicts gt 0 exactly
    result = assert_matches_reference(outputs, labels, grid)
    # gt 1 (IoU 0.64 everywhere) asks for 6 anchors, all of which gt 0 (IoU ~1) wants too and wins
    assert result.dynamic_ks[0, 1].item() == 6
    assert (result.matched_gt_inds[0][result.fg_mask[0]] == 0).all()
    assert int(result.fg_mask.sum()) == result.dynamic_ks[0, 0].item()


def test_empty_label_tensor_gives_no_positives():
    outputs, _, grid = synthetic_batch([3], size=64, num_classes=2, seed=1)
    result = simota_assign(outputs, torch.zeros(1, 0, 5), *grid)
    assert not result.fg_mask.any() and result.num_gt.tolist() == [0]


def test_fp16_inputs_are_assigned_in_float32():
    outputs, labels, grid = synthetic_batch([30, 12], size=96, num_classes=4, seed=9)
    half = simota_assign(outputs.half(), labels.half(), *(part.half() for part in grid))
    assert half.matched_ious.dtype == torch.float32
    upcast = assert_matches_reference(outputs.half().float(), labels.half().float(), grid)
    assert torch.equal(half.fg_mask, upcast.fg_mask)
    assert torch.equal(half.matched_ious, upcast.matched_ious)


def test_assignment_has_no_data_dependent_shapes_or_host_reads(monkeypatch):
    """On the meta device every value is unknown: .item(), nonzero or boolean indexing would raise."""
    outputs, labels, grid = synthetic_batch([20, 0], size=64, num_classes=3, seed=2)
    meta = simota_assign(outputs.to("meta"), labels.to("meta"), *(part.to("meta") for part in grid))
    assert meta.fg_mask.shape == outputs.shape[:2] and meta.fg_mask.device.type == "meta"

    calls = []
    for name in ("item", "tolist", "nonzero", "__bool__", "__int__", "__float__", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _n=name, _o=original, **k: calls.append(_n) or _o(self, *a, **k))
    simota_assign(outputs, labels, *grid, max_pair_elements=500)
    monkeypatch.undo()
    assert calls == []


def test_meta_check_catches_a_host_read():
    """The meta-device check above can fail: a data-dependent op raises there."""
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.zeros(3, device="meta").nonzero()
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.zeros(3, device="meta").sum().item()
    with pytest.raises((NotImplementedError, RuntimeError)):
        torch.zeros(3, device="meta")[torch.ones(3, dtype=torch.bool, device="meta")]


def test_dynamic_k_truncates_top10_iou_sum():
    outputs, labels, grid = synthetic_batch([1], size=64, num_classes=2, seed=4)
    box = torch.tensor([32.0, 32.0, 20.0, 20.0])
    labels[0, 0, 1:5] = box
    outputs[0, :, :4] = box
    # 12 anchors are candidates; 3 of the stride-32 ones get IoU 0.5, so the top 10 sum to 9.5
    outputs[0, -3:, 2:4] = 20.0 * math.sqrt(2)
    result = assert_matches_reference(outputs, labels, grid)
    assert result.dynamic_ks[0, 0].item() == 9
    assert int(result.fg_mask.sum()) == 9


def test_cuda_assignment_equals_cpu():
    """Runs where CUDA exists (the coordinator's GPU batch); also checks the 1,000-gt block plan there."""
    from yolox.utils.device import device_count, select_device

    if device_count("cuda") == 0:
        pytest.skip("no CUDA device")
    outputs, labels, grid = synthetic_batch([1000, 300, 0, 40], size=640, num_classes=80, seed=13)
    device = select_device("cuda")
    on_cpu = simota_assign(outputs, labels, *grid)
    on_gpu = simota_assign(outputs.to(device), labels.to(device), *(part.to(device) for part in grid))
    assert torch.equal(on_gpu.fg_mask.cpu(), on_cpu.fg_mask)
    assert torch.equal(on_gpu.matched_gt_inds.cpu()[on_cpu.fg_mask], on_cpu.matched_gt_inds[on_cpu.fg_mask])
    torch.testing.assert_close(on_gpu.matched_ious.cpu(), on_cpu.matched_ious, atol=1e-5, rtol=0)
