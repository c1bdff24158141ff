"""Models built through the exps have upstream's state_dict keys, order and shapes."""
import json

import pytest
import torch

from yolox.exp import get_exp

ENTRIES = ["yolox-nano", "yolox-tiny", "yolox-s", "yolox-m", "yolox-l", "yolox-x", "yolox-s@1cls"]


@pytest.fixture(scope="module")
def reference_keys():
    from tests.conftest import shared_path

    with open(shared_path("fixtures", "yolox_keys.json")) as keys_json:
        return json.load(keys_json)


@pytest.mark.parametrize("entry", ENTRIES)
def test_state_dict_matches_upstream(entry, reference_keys):
    name, _, classes = entry.partition("@")
    exp = get_exp(None, name)
    if classes:
        exp.num_classes = int(classes.replace("cls", ""))
    # Parameters on the meta device: shapes without the memory or init cost of yolox-x.
    with torch.device("meta"):
        model = exp.get_model()
    built = [[key, list(value.shape), str(value.dtype).replace("torch.", "")]
             for key, value in model.state_dict().items()]
    assert built == reference_keys[entry]


def test_get_model_builds_a_new_initialised_model_at_each_call():
    exp = get_exp(None, "yolox-nano")
    trained = exp.get_model()
    with torch.no_grad():
        trained.head.obj_preds[0].bias.fill_(3.0)
    model = exp.get_model()
    assert model is not trained and "model" not in vars(exp)  # the trainer owns the model, not the exp
    # upstream's prior bias: -log((1 - 0.01) / 0.01)
    obj_bias = model.head.obj_preds[0].bias
    assert torch.allclose(obj_bias, torch.full_like(obj_bias, -4.59512), atol=1e-4)
    batch_norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert batch_norms and all(m.eps == 1e-3 and m.momentum == 0.03 for m in batch_norms)


def test_yolov3_parameter_count():
    with torch.device("meta"):
        model = get_exp(None, "yolov3").get_model()
    assert sum(p.numel() for p in model.parameters()) == 63_724_767
    assert len(model.state_dict()) == 528
