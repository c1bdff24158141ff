"""YOLOXHead and the YOLOX wrapper: eval layout, decoding, grid cache, train plumbing, loss dict order."""
import math

import pytest
import torch

from yolox.models import yolox_loss
from yolox.models.build import build_yolox, init_yolox
from yolox.models.yolo_head import YOLOXHead

NUM_CLASSES = 3
WIDTH = 0.25
SIZE = (64, 96)  # h, w: not square, so an h/w swap shows


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return init_yolox(build_yolox(0.33, WIDTH, NUM_CLASSES, depthwise=True))


def anchor_count(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


def test_eval_shapes_and_score_ranges():
    model = tiny_model().eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *SIZE) * 255)
    assert out.shape == (2, anchor_count(*SIZE), 5 + NUM_CLASSES)
    assert model.head.hw == [(8, 12), (4, 6), (2, 3)]
    assert ((out[..., 4:] >= 0) & (out[..., 4:] <= 1)).all()
    assert (out[..., 2:4] > 0).all()


def test_decode_outputs_matches_decoded_forward_and_grid_layout():
    model = tiny_model().eval()
    image = torch.rand(1, 3, *SIZE) * 255
    with torch.no_grad():
        decoded = model(image)
        model.head.decode_in_inference = False
        raw = model(image)
    torch.testing.assert_close(model.head.decode_outputs(raw.clone(), dtype=raw.dtype), decoded)
    torch.testing.assert_close(model.head.decode_outputs(raw.clone(), dtype="torch.FloatTensor"), decoded)
    # anchor 13 is level 0 (stride 8, 12 columns), row 1, column 1: centre = (raw + 1) * 8
    torch.testing.assert_close(decoded[0, 13, :2], (raw[0, 13, :2] + 1) * 8)
    # first anchor of level 2 (stride 32) has grid (0, 0)
    first_l2 = 8 * 12 + 4 * 6
    torch.testing.assert_close(decoded[0, first_l2, 2:4], raw[0, first_l2, 2:4].exp() * 32)


def test_grid_cache_reused_and_rebuilt_per_size_dtype():
    head = YOLOXHead(NUM_CLASSES, WIDTH)
    grid = head.level_grid(0, 2, 3, torch.float32, torch.device("cpu"))
    assert grid.tolist() == [[[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]]]
    assert head.level_grid(0, 2, 3, torch.float32, torch.device("cpu")) is grid
    assert head.level_grid(0, 3, 3, torch.float32, torch.device("cpu")).shape == (1, 9, 2)
    transposed = head.level_grid(0, 3, 2, torch.float32, torch.device("cpu"))  # same h*w as 2x3
    assert transposed.tolist() == [[[0, 0], [1, 0], [0, 1], [1, 1], [0, 2], [1, 2]]]
    assert head.level_grid(0, 3, 3, torch.float64, torch.device("cpu")).dtype == torch.float64


def test_initialize_biases_prior():
    head = YOLOXHead(NUM_CLASSES, WIDTH)
    bias_before = head.cls_preds[0].bias
    head.initialize_biases(1e-2)
    for conv in (*head.cls_preds, *head.obj_preds):
        assert torch.allclose(conv.bias, torch.full_like(conv.bias, -math.log(99)))
    assert head.cls_preds[0].bias is bias_before  # filled in place: an optimizer built earlier still sees it
    assert not torch.allclose(head.reg_preds[0].bias, torch.full((4,), -math.log(99)))


@pytest.fixture
def recorded_losses(monkeypatch):
    """Swap the LOSS module's compute_losses for a recorder returning distinct numbers per slot."""
    seen = {}

    def fake_compute_losses(outputs, labels, x_shifts, y_shifts, expanded_strides, origin_preds, **kwargs):
        seen.update(outputs=outputs, labels=labels, x_shifts=x_shifts, y_shifts=y_shifts,
                    expanded_strides=expanded_strides, origin_preds=origin_preds, **kwargs)
        return tuple(outputs.sum() * 0 + value for value in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))

    monkeypatch.setattr(yolox_loss, "compute_losses", fake_compute_losses)
    return seen


@pytest.mark.parametrize("use_l1", [False, True])
def test_train_forward_hands_decoded_outputs_to_compute_losses(recorded_losses, use_l1):
    model = tiny_model().train()
    model.head.use_l1 = use_l1
    labels = torch.zeros(2, 4, 5)
    losses = model(torch.rand(2, 3, *SIZE) * 255, labels)

    # tuple order (total, iou, conf, cls, l1, num_fg) -> upstream's dict order
    assert list(losses) == ["total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg"]
    assert [float(v.detach()) for v in losses.values()] == [1.0, 2.0, 5.0, 3.0, 4.0, 6.0]

    seen = recorded_losses
    anchors = anchor_count(*SIZE)
    assert seen["outputs"].shape == (2, anchors, 5 + NUM_CLASSES)
    assert seen["labels"] is labels
    for key in ("x_shifts", "y_shifts", "expanded_strides"):
        assert seen[key].shape == (1, anchors) and seen[key].dtype == torch.float32
    assert seen["expanded_strides"].unique().tolist() == [8, 16, 32]
    assert seen["num_classes"] == NUM_CLASSES and seen["use_l1"] is use_l1
    assert seen["iou_loss"] is model.head.iou_loss
    # logits, not probabilities; boxes decoded from the shifts
    assert (seen["outputs"][..., 4:] < 0).any()
    strides = seen["expanded_strides"][0]
    if use_l1:
        raw = seen["origin_preds"]
        assert raw.shape == (2, anchors, 4)
        torch.testing.assert_close(seen["outputs"][..., 0], (raw[..., 0] + seen["x_shifts"]) * strides)
        torch.testing.assert_close(seen["outputs"][..., 3], raw[..., 3].exp() * strides)
    else:
        assert seen["origin_preds"] is None


def test_train_forward_without_targets_is_refused():
    model = tiny_model().train()
    with pytest.raises(ValueError, match="targets"):
        model(torch.zeros(1, 3, *SIZE))


def test_no_device_or_dtype_assumptions():
    """On the meta device and in float64, every tensor the head makes must follow its input."""
    model = tiny_model().to(device="meta", dtype=torch.float64).eval()
    out = model(torch.empty(2, 3, *SIZE, device="meta", dtype=torch.float64))
    assert out.device.type == "meta" and out.dtype == torch.float64
    assert out.shape == (2, anchor_count(*SIZE), 5 + NUM_CLASSES)
    assert all(grid.device.type == "meta" and grid.dtype == torch.float64 for grid in model.head.grids)


def test_train_forward_follows_device_and_dtype(recorded_losses):
    model = tiny_model().to(device="meta", dtype=torch.float64).train()
    model.head.use_l1 = True
    model(torch.empty(2, 3, *SIZE, device="meta", dtype=torch.float64), torch.empty(2, 4, 5, device="meta"))
    for key in ("outputs", "x_shifts", "y_shifts", "expanded_strides", "origin_preds"):
        tensor = recorded_losses[key]
        assert tensor.device.type == "meta" and tensor.dtype == torch.float64, key


def test_train_decode_and_loss_inputs_are_float32_under_half_autocast(recorded_losses):
    """Half-precision convolutions, float32 box decode: exp(w) and w * h overflow float16 at large boxes."""
    model = tiny_model().train()
    model.head.use_l1 = True
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        model(torch.rand(2, 3, *SIZE), torch.zeros(2, 4, 5))
    for key in ("outputs", "origin_preds"):
        assert recorded_losses[key].dtype == torch.float32, key


def test_visualize_assignment_writes_one_image_per_input(tmp_path):
    cv2 = pytest.importorskip("cv2")
    model = tiny_model().eval()
    images = torch.rand(2, 3, *SIZE) * 255
    labels = torch.zeros(2, 3, 5)
    labels[0, 0] = torch.tensor([1.0, 40.0, 30.0, 24.0, 20.0])
    labels[1, :2] = torch.tensor([[0.0, 20.0, 20.0, 16.0, 16.0], [2.0, 70.0, 40.0, 30.0, 30.0]])
    paths = model.visualize(images, labels, save_prefix=str(tmp_path / "assign_"))
    assert paths == [str(tmp_path / "assign_0.png"), str(tmp_path / "assign_1.png")]
    drawn = cv2.imread(paths[0])
    assert drawn.shape == (*SIZE, 3)
    undrawn = images[0].permute(1, 2, 0).to(torch.uint8).numpy()
    assert (drawn != undrawn).any()  # boxes and anchor centres were drawn
