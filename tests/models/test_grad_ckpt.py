"""Gradient checkpointing: identical outputs, gradients and BatchNorm statistics, fewer saved tensors."""
import copy

import pytest
import torch

from yolox.models import YOLOPAFPN, build_yolox
from yolox.models.grad_ckpt import checkpointed_modules, disable_grad_checkpointing, enable_grad_checkpointing


@pytest.fixture(autouse=True)
def one_thread():
    """Small convolutions on a shared 2-core machine run far faster without thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_neck(p2: bool = False) -> YOLOPAFPN:
    torch.manual_seed(0)
    neck = YOLOPAFPN(depth=0.33, width=0.125, p2=p2)
    for module in neck.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 0.03
    return neck.train()


def run_step(neck: torch.nn.Module, images: torch.Tensor):
    """Loss, parameter gradients and the number of tensors autograd saved for backward."""
    saved = []

    def pack(tensor):
        saved.append(tensor.numel())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        outputs = neck(images)
    loss = sum((out.float() ** 2).mean() for out in outputs)
    loss.backward()
    grads = {name: p.grad.clone() for name, p in neck.named_parameters()}
    return loss.detach(), grads, sum(saved)


@pytest.mark.parametrize("p2", [False, True])
def test_same_loss_grads_and_bn_stats_with_fewer_saved_activations(p2):
    images = torch.rand(2, 3, 64, 64) * 255
    plain = tiny_neck(p2)
    ckpt = copy.deepcopy(plain)
    names = enable_grad_checkpointing(ckpt)
    assert "backbone.dark3" in names and "C3_n4" in names
    assert ("C3_p2" in names) == p2  # the stride-4 path is checkpointed like the other neck blocks

    loss_plain, grads_plain, saved_plain = run_step(plain, images)
    loss_ckpt, grads_ckpt, saved_ckpt = run_step(ckpt, images)

    assert torch.allclose(loss_plain, loss_ckpt, rtol=1e-6, atol=1e-6)
    for name, grad in grads_plain.items():
        assert torch.allclose(grad, grads_ckpt[name], rtol=1e-4, atol=1e-6), name
    # recomputation in backward must not update BatchNorm running statistics a second time
    for (name, a), (_, b) in zip(plain.state_dict().items(), ckpt.state_dict().items()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-7), name
    # only block inputs are kept: far fewer activation elements held for backward
    assert saved_ckpt < saved_plain / 3


def test_eval_mode_and_state_dict_keys_unchanged():
    plain = tiny_neck().eval()
    ckpt = copy.deepcopy(plain)
    enable_grad_checkpointing(ckpt)
    assert list(plain.state_dict()) == list(ckpt.state_dict())
    images = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        for a, b in zip(plain(images), ckpt(images)):
            assert torch.equal(a, b)


def test_full_model_targets_backbone_and_neck_and_can_be_undone():
    model = build_yolox(0.33, 0.25, num_classes=1, depthwise=True)
    names = [name for name, _ in checkpointed_modules(model)]
    stages = {f"backbone.backbone.{stage}" for stage in ("stem", "dark2", "dark3", "dark4", "dark5")}
    necks = {f"backbone.{block}" for block in ("C3_p4", "C3_p3", "C3_n3", "C3_n4", "lateral_conv0")}
    assert stages | necks <= set(names)
    assert not any(name.startswith("head") for name in names)
    enable_grad_checkpointing(model)
    assert type(model.backbone.C3_p4).__name__ == "CheckpointedCSPLayer"
    ema_copy = copy.deepcopy(model)             # the trainer's EMA deep-copies the model
    assert type(ema_copy.backbone.C3_p4).__name__ == "CheckpointedCSPLayer"
    disable_grad_checkpointing(model)
    assert type(model.backbone.C3_p4).__name__ == "CSPLayer"
