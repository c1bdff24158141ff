"""Box utilities: conversions in place, IoU matrices, postprocess semantics."""
import numpy as np
import pytest
import torch

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
