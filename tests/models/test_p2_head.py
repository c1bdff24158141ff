"""The optional stride-4 level (p2): anchor layout, training step, and the standard model left untouched."""
import json

import pytest
import torch

from tests.conftest import shared_path
from yolox.exp import get_exp
from yolox.models.build import MODEL_SIZES, P2_STRIDES, build_yolox, init_yolox
from yolox.utils.checkpoint import load_ckpt

SIZE = (64, 96)  # h, w: not square, so an h/w swap shows
NEW_MODULES = ("backbone.reduce_conv2.", "backbone.C3_p2.")


def nano(p2: bool, num_classes: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    return init_yolox(build_yolox(0.33, 0.25, num_classes, depthwise=True, p2=p2))


def layout(model: torch.nn.Module) -> list:
    return [[key, list(v.shape), str(v.dtype).replace("torch.", "")] for key, v in model.state_dict().items()]


def test_eval_output_has_the_anchors_of_four_levels():
    model = nano(p2=True).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, *SIZE) * 255)
    assert model.head.strides == list(P2_STRIDES)
    assert out.shape == (2, sum((SIZE[0] // s) * (SIZE[1] // s) for s in P2_STRIDES), 6)
    assert model.head.hw == [(SIZE[0] // s, SIZE[1] // s) for s in P2_STRIDES]
    # the stride-4 anchors come last: the first of them is grid (0, 0), its box exp(raw) * 4
    model.head.decode_in_inference = False
    with torch.no_grad():
        raw = model(torch.zeros(1, 3, *SIZE))
    first_p2 = sum((SIZE[0] // s) * (SIZE[1] // s) for s in P2_STRIDES[:3])
    torch.testing.assert_close(model.head.decode_outputs(raw.clone())[0, first_p2, :4],
                               torch.cat([raw[0, first_p2, :2] * 4, raw[0, first_p2, 2:4].exp() * 4]))


def test_p2_off_is_upstream_layout_and_on_only_adds_the_new_level():
    expected = json.loads(shared_path("fixtures", "yolox_keys.json").read_text())["yolox-nano"]
    depth, width, depthwise = MODEL_SIZES["yolox-nano"]
    assert layout(build_yolox(depth, width, 80, depthwise=depthwise, p2=False)) == expected
    with_p2 = layout(build_yolox(depth, width, 80, depthwise=depthwise, p2=True))
    standard_keys = {key for key, *_ in expected}
    assert [row for row in with_p2 if row[0] in standard_keys] == expected  # same keys, shapes, order
    extra = [key for key, *_ in with_p2 if key not in standard_keys]
    assert extra and all(key.startswith(NEW_MODULES) or ".3." in key for key in extra)


def test_standard_weights_fine_tune_into_the_first_three_levels():
    source, target = nano(p2=False), nano(p2=True)
    target_before = {key: value.clone() for key, value in target.state_dict().items()}
    load_ckpt(target, {"model": source.state_dict()})
    for key, value in target.state_dict().items():
        if key in source.state_dict():
            torch.testing.assert_close(value, source.state_dict()[key])
        else:
            torch.testing.assert_close(value, target_before[key])


def test_training_step_is_finite_and_small_boxes_train_the_stride4_level():
    model = nano(p2=True).train()
    # craters of 3 to 12 px, the size the stride-4 level is for, and one large box
    labels = torch.zeros(2, 8, 5)
    labels[:, :5, 1:] = torch.tensor([[10, 10, 3, 3], [30, 20, 5, 5], [50, 40, 8, 8], [70, 30, 12, 12],
                                      [48, 32, 40, 40]], dtype=torch.float32)
    losses = model(torch.rand(2, 3, *SIZE) * 255, labels)
    assert all(torch.isfinite(value).all() for value in losses.values())
    losses["total_loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # positives on the stride-4 level give its box predictor a gradient; the neck's new path gets one too
    assert model.head.reg_preds[3].weight.grad.abs().sum() > 0
    assert model.backbone.C3_p2.conv3.conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("exp_name", ["yolox-nano", "exps/crater/yolox_nano_crater.py"])
def test_exp_switch_builds_the_four_level_model(exp_name):
    exp = get_exp(exp_name if exp_name.endswith(".py") else None, None if exp_name.endswith(".py") else exp_name)
    exp.num_classes_from_data = False
    exp.merge(["p2_head", "true"])
    with torch.device("meta"):
        model = exp.get_model()
    assert model.head.strides == list(P2_STRIDES) and len(model.head.stems) == 4
    assert hasattr(model.backbone, "C3_p2")
