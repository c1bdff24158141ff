"""Box utilities: conversions in place, IoU matrices, postprocess semantics."""
import numpy as np
import pytest
import torch
import torchvision

from yolox.utils import boxes
from yolox.utils.boxes import (
    adjust_box_anns,
    bboxes_iou,
    cxcywh2xyxy,
    filter_box,
    matrix_iou,
    postprocess,
    xyxy2cxcywh,
    xyxy2xywh,
)


def prediction_rows(rows):
    """[1, N, 5+2] from (cx, cy, w, h, obj, cls0, cls1) rows."""
    return torch.tensor([rows], dtype=torch.float32)


def test_conversions_are_in_place_and_inverse():
    boxes = np.array([[10.0, 20.0, 50.0, 80.0, 7.0]])
    same = xyxy2cxcywh(boxes)
    assert same is boxes
    np.testing.assert_allclose(boxes, [[30.0, 50.0, 40.0, 60.0, 7.0]])
    cxcywh2xyxy(boxes)
    np.testing.assert_allclose(boxes, [[10.0, 20.0, 50.0, 80.0, 7.0]])
    np.testing.assert_allclose(xyxy2xywh(boxes), [[10.0, 20.0, 40.0, 60.0, 7.0]])


def test_bboxes_iou_xyxy_and_cxcywh():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0]])
    iou = bboxes_iou(a, b)
    assert iou.shape == (2, 1)
    torch.testing.assert_close(iou, torch.tensor([[50 / 150], [0.0]]))
    torch.testing.assert_close(bboxes_iou(xyxy2cxcywh(a.clone()), xyxy2cxcywh(b.clone()), xyxy=False), iou)
    with pytest.raises(IndexError):
        bboxes_iou(torch.zeros(1, 5), b)


def test_matrix_iou_numpy():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [10.0, 10.0, 20.0, 20.0]])
    np.testing.assert_allclose(matrix_iou(a, b), [[1.0, 0.0]], atol=1e-9)


def test_adjust_box_anns_scales_shifts_clips():
    boxes = np.array([[10.0, 10.0, 200.0, 50.0]])
    np.testing.assert_allclose(adjust_box_anns(boxes, 0.5, 5, -10, 80, 100), [[10.0, 0.0, 80.0, 15.0]])


def test_filter_box_area_range():
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 100.0]])
    assert filter_box(boxes, (3, 50)).tolist() == [[0.0, 0.0, 10.0, 10.0]]


def test_postprocess_threshold_is_inclusive_and_converts_in_place():
    pred = prediction_rows([[50, 50, 20, 10, 0.5, 0.2, 0.6], [10, 10, 4, 4, 0.5, 0.59, 0.1]])
    out = postprocess(pred, num_classes=2, conf_thre=0.3)
    # in place: columns 0-3 of the input became corners
    torch.testing.assert_close(pred[0, 0, :4], torch.tensor([40.0, 45.0, 60.0, 55.0]))
    assert len(out) == 1 and out[0].shape == (1, 7)
    torch.testing.assert_close(out[0][0], torch.tensor([40.0, 45.0, 60.0, 55.0, 0.5, 0.6, 1.0]))


def test_postprocess_none_when_nothing_passes():
    pred = torch.cat([prediction_rows([[5, 5, 2, 2, 0.1, 0.1, 0.1]])] * 2)
    pred[1, 0, 4] = 0.9
    pred[1, 0, 5] = 0.9
    out = postprocess(pred, num_classes=2, conf_thre=0.5)
    assert out[0] is None and out[1].shape == (1, 7)


def test_postprocess_nms_class_aware_vs_agnostic_and_score_order():
    rows = [
        [50, 50, 20, 20, 0.9, 0.8, 0.1],  # class 0, score 0.72
        [51, 50, 20, 20, 0.9, 0.1, 0.9],  # class 1, score 0.81, overlaps row 0
        [52, 50, 20, 20, 0.9, 0.7, 0.1],  # class 0, score 0.63, suppressed by row 0
    ]
    aware = postprocess(prediction_rows(rows), 2, conf_thre=0.1, nms_thre=0.45)[0]
    assert aware[:, 6].tolist() == [1.0, 0.0]
    scores = aware[:, 4] * aware[:, 5]
    assert scores[0] > scores[1]
    agnostic = postprocess(prediction_rows(rows), 2, conf_thre=0.1, nms_thre=0.45, class_agnostic=True)[0]
    assert agnostic[:, 6].tolist() == [1.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_postprocess_low_precision_predictions(dtype):
    rows = [[50, 50, 20, 20, 0.9, 0.8, 0.1], [52, 50, 20, 20, 0.9, 0.7, 0.1], [10, 10, 8, 8, 0.9, 0.1, 0.9]]
    out = postprocess(prediction_rows(rows).to(dtype), 2, conf_thre=0.1, nms_thre=0.45)[0]
    assert out.dtype == dtype
    assert out[:, 6].tolist() == [1.0, 0.0]


def scattered_prediction(rng: np.random.Generator, num_images: int, anchors: int, num_classes: int,
                         score_levels: int = 0) -> torch.Tensor:
    """[B, N, 5+C] of random boxes; score_levels > 0 quantises obj so equal scores occur."""
    centres = rng.uniform(0, 400, size=(num_images, anchors, 2))
    sizes = rng.uniform(4, 40, size=(num_images, anchors, 2))
    obj = rng.uniform(0, 1, size=(num_images, anchors, 1))
    if score_levels:
        obj = np.ceil(obj * score_levels) / score_levels
    cls = rng.uniform(0, 1, size=(num_images, anchors, num_classes))
    return torch.tensor(np.concatenate([centres, sizes, obj, cls], axis=2), dtype=torch.float32)


def per_image_reference(pred: torch.Tensor, num_classes: int, conf_thre: float, nms_thre: float) -> list:
    """The plain per-image loop: threshold, class-aware NMS, sort by score with equal scores in anchor order."""
    pred = pred.clone()
    xyxy = torch.cat([pred[..., :2] - pred[..., 2:4] / 2, pred[..., :2] + pred[..., 2:4] / 2], dim=-1)
    cls_conf, cls_pred = pred[..., 5:5 + num_classes].max(dim=-1, keepdim=True)
    rows = torch.cat([xyxy, pred[..., 4:5], cls_conf, cls_pred.float()], dim=-1)
    output = []
    for image_rows in rows:
        image_rows = image_rows[image_rows[:, 4] * image_rows[:, 5] >= conf_thre]
        scores = image_rows[:, 4] * image_rows[:, 5]
        kept = torchvision.ops.batched_nms(image_rows[:, :4], scores, image_rows[:, 6], nms_thre).sort().values
        order = torch.sort(scores[kept], descending=True, stable=True).indices
        output.append(image_rows[kept][order] if len(kept) else None)
    return output


def first_per_class(rows: torch.Tensor, max_dets: int) -> torch.Tensor:
    """The first max_dets rows of each class, order kept."""
    seen: dict = {}
    keep = []
    for cls in rows[:, 6].tolist():
        seen[cls] = seen.get(cls, 0) + 1
        keep.append(seen[cls] <= max_dets)
    return rows[torch.tensor(keep)]


def test_postprocess_batched_equals_the_per_image_loop():
    pred = scattered_prediction(np.random.default_rng(0), 4, 600, 3)
    pred[2, :, 4] = 0.0  # an image without candidates
    expected = per_image_reference(pred, 3, 0.05, 0.5)
    actual = postprocess(pred.clone(), 3, conf_thre=0.05, nms_thre=0.5)
    assert actual[2] is None and expected[2] is None
    for got, want in zip(actual[:2] + actual[3:], expected[:2] + expected[3:]):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("score_levels", [0, 7])
def test_postprocess_cap_keeps_the_first_rows_of_each_class(score_levels):
    pred = scattered_prediction(np.random.default_rng(1), 3, 900, 2, score_levels)
    uncapped = postprocess(pred.clone(), 2, conf_thre=0.01, nms_thre=0.6)
    capped = postprocess(pred.clone(), 2, conf_thre=0.01, nms_thre=0.6, max_dets=25)
    for got, full in zip(capped, uncapped):
        assert len(full) > 50 and len(got) == 50
        torch.testing.assert_close(got, first_per_class(full, 25), rtol=0, atol=0)


def test_postprocess_equal_scores_keep_anchor_order():
    rows = [[10 + 30 * i, 10, 8, 8, 0.5, 0.8, 0.1] for i in range(6)]
    out = postprocess(prediction_rows(rows), 2, conf_thre=0.1, nms_thre=0.5, max_dets=4)[0]
    assert out[:, 0].tolist() == [6.0, 36.0, 66.0, 96.0]


def test_postprocess_pre_nms_cap_bounds_nms_input(monkeypatch):
    sizes = []
    real_nms = torchvision.ops.batched_nms

    def recording_nms(boxes, scores, idxs, iou_threshold):
        sizes.append(len(boxes))
        return real_nms(boxes, scores, idxs, iou_threshold)

    monkeypatch.setattr(torchvision.ops, "batched_nms", recording_nms)
    # a 40 x 40 grid of touching boxes: nothing overlaps, every candidate would survive NMS
    grid = [[4 + 8 * (i % 40), 4 + 8 * (i // 40), 8, 8, 0.001 + i / 2000, 1.0, 0.0] for i in range(1600)]
    out = postprocess(torch.tensor([grid, grid]), 2, conf_thre=0.001, nms_thre=0.5, max_dets=5)
    assert sizes == [2 * 5 * boxes.PRE_NMS_PER_DET]
    assert [len(rows) for rows in out] == [5, 5]
    assert out[0][0, 4].item() == pytest.approx(0.001 + 1599 / 2000)


def test_postprocess_redoes_an_image_whose_capped_candidates_leave_too_few():
    # 30 copies of one box outscore 3 separate boxes: the capped candidates hold one NMS survivor
    cluster = [[50, 50, 20, 20, 0.9 - i / 1000, 1.0, 0.0] for i in range(30)]
    separate = [[200 + 30 * i, 200, 10, 10, 0.5 - i / 100, 1.0, 0.0] for i in range(3)]
    pred = prediction_rows(cluster + separate)
    out = postprocess(pred.clone(), 2, conf_thre=0.1, nms_thre=0.5, max_dets=2)[0]
    assert 2 * boxes.PRE_NMS_PER_DET < 30
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.5])
