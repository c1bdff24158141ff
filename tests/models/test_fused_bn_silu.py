"""The fused BatchNorm+SiLU CPU kernel against nn.BatchNorm2d + nn.SiLU: outputs, gradients, running stats."""
import copy

import pytest
import torch
from torch import nn

from yolox.models import fused_bn_silu
from yolox.models.build import build_yolox, init_yolox
from yolox.models.network_blocks import BaseConv, use_fused_bn_act

# Both paths compute in float32; the fused one accumulates in double, so they differ by float rounding only.
TOL = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module", autouse=True)
def built_kernel():
    assert fused_bn_silu.kernel() is not None, "the C++ kernel must build where the tests run (g++ and ninja)"


def conv_pair(c_in: int, c_out: int, ksize: int, momentum=0.03):
    """A plain BaseConv and a fused copy of it, in channels_last, with non-trivial BN parameters and stats."""
    torch.manual_seed(0)
    plain = BaseConv(c_in, c_out, ksize, 1)
    plain.bn.eps, plain.bn.momentum = 1e-3, momentum
    with torch.no_grad():
        plain.bn.weight.uniform_(0.5, 1.5)
        plain.bn.bias.normal_()
        plain.bn.running_mean.normal_()
        plain.bn.running_var.uniform_(0.5, 2.0)
    plain = plain.to(memory_format=torch.channels_last).train()
    fused = copy.deepcopy(plain)
    assert use_fused_bn_act(fused, True) == 1
    return plain, fused


def channels_last_input(shape, offset: float = 0.0) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 3 + offset
    return x.contiguous(memory_format=torch.channels_last)


def step(module: nn.Module, x: torch.Tensor, seed: int):
    """Forward, then backward of a seeded random output gradient; returns (output, input gradient)."""
    x = x.clone().requires_grad_()
    out = module(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)))
    return out, x.grad


def assert_same_training(plain: BaseConv, fused: BaseConv, x: torch.Tensor, steps: int = 1) -> None:
    for i in range(steps):
        plain.zero_grad(), fused.zero_grad()
        out_p, gx_p = step(plain, x, seed=10 + i)
        out_f, gx_f = step(fused, x, seed=10 + i)
        assert type(out_f.grad_fn).__name__ == "_BatchNormSiLUBackward", "the fused path was not taken"
        assert out_f.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out_f, out_p, **TOL)
        torch.testing.assert_close(gx_f, gx_p, **TOL)
        for (name, p_plain), p_fused in zip(plain.named_parameters(), fused.parameters()):
            # a weight gradient sums thousands of products: its rounding scales with its largest element
            scale = float(p_plain.grad.abs().max())
            torch.testing.assert_close(p_fused.grad, p_plain.grad, rtol=TOL["rtol"], atol=TOL["atol"] * max(scale, 1.0),
                                       msg=lambda default, name=name: f"{name}: {default}")
        torch.testing.assert_close(fused.bn.running_mean, plain.bn.running_mean, **TOL)
        torch.testing.assert_close(fused.bn.running_var, plain.bn.running_var, **TOL)
        assert int(fused.bn.num_batches_tracked) == int(plain.bn.num_batches_tracked) == i + 1


@pytest.mark.parametrize("c_in,c_out,shape", [
    (3, 16, (4, 3, 40, 40)),     # one full 16-float vector per row
    (8, 24, (2, 8, 13, 13)),     # a full vector and a partial one
    (4, 5, (3, 4, 7, 9)),        # a partial vector only
    (16, 64, (2, 16, 10, 10)),
])
def test_fused_matches_plain_forward_backward_and_running_stats(c_in, c_out, shape):
    plain, fused = conv_pair(c_in, c_out, 3)
    assert_same_training(plain, fused, channels_last_input(shape), steps=2)


def test_fused_is_as_accurate_as_plain_when_the_mean_dwarfs_the_spread():
    """BN inputs of mean ~290 and std ~37: both float32 paths stay as close to a float64 run as each other."""
    plain, fused = conv_pair(8, 16, 1)
    with torch.no_grad():
        for conv in (plain, fused):
            conv.conv.weight.abs_()
    exact = copy.deepcopy(plain).double()
    x = channels_last_input((2, 8, 12, 12), offset=200.0)
    out_64, grad_64 = step(exact, x.double(), seed=3)

    def errors(module: BaseConv):
        out, grad = step(module, x, seed=3)
        pairs = ((out, out_64), (grad, grad_64), (module.bn.weight.grad, exact.bn.weight.grad),
                 (module.bn.running_var, exact.bn.running_var))
        with torch.no_grad():
            return [float((ours - ref).abs().max() / ref.abs().max()) for ours, ref in pairs]

    for fused_err, plain_err in zip(errors(fused), errors(plain)):
        assert fused_err <= 1.5 * plain_err + 1e-7


def test_cumulative_average_when_momentum_is_none():
    plain, fused = conv_pair(4, 16, 3, momentum=None)
    assert_same_training(plain, fused, channels_last_input((2, 4, 9, 9)), steps=3)


@pytest.mark.parametrize("case", ["eval", "contiguous", "float64", "relu", "one_value"])
def test_plain_path_wherever_the_kernel_does_not_apply(case):
    plain, fused = conv_pair(4, 16, 1)
    x = channels_last_input((2, 4, 6, 6))
    if case == "eval":
        plain.eval(), fused.eval()
    elif case == "contiguous":
        plain, fused = (conv.to(memory_format=torch.contiguous_format) for conv in (plain, fused))
        x = x.contiguous()
    elif case == "float64":
        plain.double(), fused.double()
        x = x.double()
    elif case == "relu":
        plain.act, fused.act = nn.ReLU(), nn.ReLU()
    else:
        x = x[:1, :, :1, :1]
    assert not fused_bn_silu.fusable(fused.conv(x), fused.bn, fused.act)
    if case == "one_value":  # nn.BatchNorm2d's own error, not the kernel's
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            fused(x)
        return
    out = fused(x)
    assert type(out.grad_fn).__name__ != "_BatchNormSiLUBackward"
    torch.testing.assert_close(out, plain(x))


def test_switch_leaves_state_dict_keys_and_counts_every_base_conv():
    model = init_yolox(build_yolox(0.33, 0.25, num_classes=1, depthwise=True))
    keys = list(model.state_dict())
    convs = sum(isinstance(module, BaseConv) for module in model.modules())
    assert use_fused_bn_act(model, True) == convs > 0
    assert list(model.state_dict()) == keys
    assert use_fused_bn_act(model, False) == convs
    assert not any(getattr(module, "fused_bn_act", False) for module in model.modules())


def test_kernel_rejects_what_it_cannot_read():
    kernel = fused_bn_silu.kernel()
    weight, bias = torch.ones(4), torch.zeros(4)
    with pytest.raises(RuntimeError, match="contiguous"):
        kernel.forward(torch.randn(4, 6).t(), weight, bias, 1e-3)
    with pytest.raises(RuntimeError, match="float32"):
        kernel.forward(torch.randn(6, 4, dtype=torch.float64), weight, bias, 1e-3)
    with pytest.raises(RuntimeError, match="one contiguous value per channel"):
        kernel.forward(torch.randn(6, 4), torch.ones(3), bias, 1e-3)
