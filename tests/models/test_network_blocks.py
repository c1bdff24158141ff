"""Building blocks: activation factory, Focus channel order, residual rules, padding, key layout."""
import pytest
import torch
from torch import nn

from yolox.models.network_blocks import (
    BaseConv,
    Bottleneck,
    CSPLayer,
    DWConv,
    Focus,
    SiLU,
    SPPBottleneck,
    get_activation,
)


def test_get_activation_kinds_and_error():
    assert isinstance(get_activation("silu"), nn.SiLU)
    assert isinstance(get_activation("relu"), nn.ReLU)
    lrelu = get_activation("lrelu")
    assert isinstance(lrelu, nn.LeakyReLU) and lrelu.negative_slope == 0.1
    with pytest.raises(AttributeError, match="Unsupported act type"):
        get_activation("gelu")


def test_silu_module_equals_nn_silu():
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(SiLU()(x), nn.functional.silu(x))


def test_base_conv_same_padding_and_keys():
    conv = BaseConv(3, 8, ksize=3, stride=2)
    assert conv(torch.zeros(1, 3, 17, 17)).shape == (1, 8, 9, 9)
    assert list(conv.state_dict()) == [
        "conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"
    ]


def test_dwconv_is_depthwise_then_pointwise():
    conv = DWConv(6, 10, ksize=3, stride=1)
    assert conv.dconv.conv.weight.shape == (6, 1, 3, 3)
    assert conv.pconv.conv.weight.shape == (10, 6, 1, 1)


def test_focus_parity_order():
    # One channel holding its own (row, col) parity code; Focus must stack (0,0), (1,0), (0,1), (1,1).
    rows = torch.arange(4)[:, None] % 2
    cols = torch.arange(4)[None, :] % 2
    parity_code = (rows + 2 * cols).float()[None, None]
    focus = Focus(1, 4, ksize=1)
    focus.conv = nn.Identity()
    stacked = focus(parity_code)
    assert [int(stacked[0, c].unique()) for c in range(4)] == [0, 1, 2, 3]


def test_bottleneck_residual_only_when_shapes_match():
    assert Bottleneck(8, 8, shortcut=True).use_add
    assert not Bottleneck(8, 8, shortcut=False).use_add
    assert not Bottleneck(8, 16, shortcut=True).use_add


def test_csp_layer_concat_order_bottleneck_branch_first():
    layer = CSPLayer(4, 4, n=1).eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        expected = layer.conv3(torch.cat([layer.m(layer.conv1(x)), layer.conv2(x)], 1))
        torch.testing.assert_close(layer(x), expected)
        swapped = layer.conv3(torch.cat([layer.conv2(x), layer.m(layer.conv1(x))], 1))
        assert not torch.allclose(layer(x), swapped)


def test_spp_keeps_size_and_uses_activation_keyword():
    spp = SPPBottleneck(16, 8, activation="lrelu")
    assert isinstance(spp.conv1.act, nn.LeakyReLU)
    assert spp.conv2.conv.in_channels == 8 * 4
    assert spp(torch.zeros(1, 16, 13, 13)).shape == (1, 8, 13, 13)


def test_spp_cascade_equals_independent_pools_exactly():
    from yolox.models.network_blocks import cascade_kernel_sizes

    assert cascade_kernel_sizes((5, 9, 13)) == [5, 5, 5]
    torch.manual_seed(0)
    x = torch.randint(0, 7, (2, 3, 13, 11)).float()  # few distinct values: many ties, borders everywhere
    current, cascaded = x, []
    for size in cascade_kernel_sizes((5, 9, 13)):
        current = torch.nn.functional.max_pool2d(current, size, stride=1, padding=size // 2)
        cascaded.append(current)
    direct = [torch.nn.functional.max_pool2d(x, k, stride=1, padding=k // 2) for k in (5, 9, 13)]
    for got, want in zip(cascaded, direct):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="odd and increasing"):
        cascade_kernel_sizes((9, 5))
