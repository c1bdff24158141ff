"""Crater recipe knobs: AdamW over upstream's param groups, the centre window reaching the head."""
import pytest
import torch

from tests.tools.conftest import REPO
from yolox.exp import get_exp

NANO_EXP = str(REPO / "exps" / "crater" / "yolox_nano_crater.py")


def tiny_exp(**overrides):
    exp = get_exp(NANO_EXP, None)
    exp.num_classes_from_data = False
    exp.merge([item for pair in overrides.items() for item in pair])
    return exp


def test_adamw_has_no_decay_on_bn_weights_and_biases():
    exp = tiny_exp(optimizer_type="adamw", weight_decay="0.05")
    exp.get_model()
    optimizer = exp.get_optimizer(8)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [0.0, 0.05, 0.0]
    assert optimizer.param_groups[0]["betas"] == (exp.momentum, 0.999)


def test_sgd_stays_the_default_and_an_unknown_optimizer_is_a_clear_error():
    exp = tiny_exp()
    exp.get_model()
    assert isinstance(exp.get_optimizer(8), torch.optim.SGD)
    wrong = tiny_exp(optimizer_type="lion")
    wrong.get_model()
    with pytest.raises(ValueError, match="optimizer_type 'lion'"):
        wrong.get_optimizer(8)


def test_center_radius_reaches_the_head():
    assert tiny_exp().get_model().head.center_radius == 1.5
    assert tiny_exp(center_radius="2.5").get_model().head.center_radius == 2.5
