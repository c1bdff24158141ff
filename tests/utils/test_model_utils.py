"""Model utilities: BN fusion keeps outputs, FLOP/param summary, module swapping, freezing, status."""
import re

import pytest
import torch
from torch import nn

from yolox.models.build import build_yolox, init_yolox
from yolox.models.network_blocks import SiLU
from yolox.utils.model_utils import (
    adjust_status,
    count_params,
    freeze_module,
    fuse_conv_and_bn,
    fuse_model,
    get_model_info,
    replace_module,
)


def nano(num_classes: int = 80) -> nn.Module:
    torch.manual_seed(0)
    return init_yolox(build_yolox(0.33, 0.25, num_classes, depthwise=True))


def randomise_bn(model: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        shape = bn.running_mean.shape
        bn.running_mean.copy_(torch.randn(shape, generator=generator) * 0.1)
        bn.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
        bn.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
        bn.bias.data.copy_(torch.randn(shape, generator=generator) * 0.1)


def test_fuse_conv_and_bn_equals_conv_then_bn():
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=False)
    bn = nn.BatchNorm2d(6, eps=1e-3)
    randomise_bn(bn)
    bn.eval()
    x = torch.randn(2, 4, 7, 7)
    fused = fuse_conv_and_bn(conv, bn)
    assert not fused.weight.requires_grad and fused.groups == 2
    torch.testing.assert_close(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)


def test_fuse_model_keeps_eval_output():
    model = nano()
    randomise_bn(model)
    model.eval()
    image = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        before = model(image)
        fuse_model(model)
        after = model(image)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-3)


def test_get_model_info_matches_upstream_figures():
    # upstream YOLOX's published nano figures: 0.91M parameters, 1.11 GFLOPs at 416 (thop)
    model = nano()
    model.train()
    info = get_model_info(model, (416, 416))
    params, gflops = map(float, re.fullmatch(r"Params: ([\d.]+)M, Gflops: ([\d.]+)", info).groups())
    assert params == 0.91
    assert gflops == pytest.approx(1.11, abs=0.01)
    assert model.training  # profiling left the caller's model alone


def test_count_params():
    assert count_params(nano()) == 912_159


def test_replace_module_swaps_every_instance():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.SiLU(), nn.Sequential(nn.SiLU()))
    model = replace_module(model, nn.SiLU, SiLU)
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == 0
    assert sum(isinstance(m, SiLU) for m in model.modules()) == 2
    assert isinstance(replace_module(nn.SiLU(), nn.SiLU, SiLU), SiLU)


def test_freeze_module_by_name():
    model = nano(num_classes=2).train()
    freeze_module(model, "backbone.backbone")
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.startswith("backbone.backbone.") for name in frozen)
    assert model.head.stems[0].conv.weight.requires_grad
    assert not model.backbone.backbone.stem.training and model.head.training


def test_adjust_status_restores_each_module():
    model = nano(num_classes=2).train()
    model.head.eval()
    with adjust_status(model, training=False):
        assert not any(m.training for m in model.modules())
    assert model.training and model.backbone.training and not model.head.training
