"""Model factories: state_dict layout vs upstream, init, named creation."""
import json

import pytest
import torch

from tests.conftest import shared_path
from yolox.models.build import MODEL_SIZES, build_yolov3, build_yolox, create_yolox_model, init_yolox


def layout(model: torch.nn.Module) -> list:
    return [[key, list(v.shape), str(v.dtype).replace("torch.", "")] for key, v in model.state_dict().items()]


@pytest.mark.parametrize("name", ["yolox-nano", "yolox-tiny", "yolox-s@1cls"])
def test_state_dict_layout_equals_upstream(name):
    expected = json.loads(shared_path("fixtures", "yolox_keys.json").read_text())[name]
    size, _, variant = name.partition("@")
    depth, width, depthwise = MODEL_SIZES[size]
    model = build_yolox(depth, width, num_classes=1 if variant == "1cls" else 80, depthwise=depthwise)
    assert layout(model) == expected


def test_yolov3_size_and_eval_forward():
    model = build_yolov3(num_classes=5).eval()
    assert len(model.state_dict()) == 528
    assert sum(p.numel() for p in model.parameters()) == 63_724_767 - 3 * 75 * (256 + 1)  # 80 -> 5 classes on 3 levels
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 8 * 8 + 4 * 4 + 2 * 2, 10)


def test_init_sets_bn_and_biases():
    model = init_yolox(build_yolox(0.33, 0.25, num_classes=2, depthwise=True), prior_prob=0.01)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.03 for m in norms)
    assert torch.allclose(model.head.obj_preds[2].bias, torch.tensor([-4.59512]), atol=1e-5)


def test_create_refuses_pretrained_without_local_file():
    with pytest.raises(ValueError, match="ckpt_path"):
        create_yolox_model("yolox-nano", pretrained=True)


def test_create_rejects_unknown_name():
    with pytest.raises(ValueError, match="yolox-nano"):
        create_yolox_model("yolox-huge")


def test_create_with_other_num_classes_fine_tunes_from_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = create_yolox_model("yolox-nano")
    path = tmp_path / "nano.pth"
    torch.save({"model": source.state_dict()}, path)
    model = create_yolox_model("yolox-nano", pretrained=True, num_classes=3, ckpt_path=str(path))
    assert model.head.cls_preds[0].weight.shape[0] == 3
    torch.testing.assert_close(model.head.reg_preds[0].weight, source.head.reg_preds[0].weight)
