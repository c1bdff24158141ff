"""Convolutional building blocks of YOLOX; attribute names define the state_dict keys."""
from typing import List, Sequence

import torch
from torch import nn

from .fused_bn_silu import batch_norm_silu, fusable

__all__ = [
    "SiLU",
    "get_activation",
    "BaseConv",
    "DWConv",
    "Bottleneck",
    "ResLayer",
    "SPPBottleneck",
    "CSPLayer",
    "Focus",
    "use_fused_bn_act",
]


class SiLU(nn.Module):
    """x * sigmoid(x) without a fused kernel; swapped in for nn.SiLU by the ONNX export."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def get_activation(name: str = "silu", inplace: bool = True) -> nn.Module:
    """Activation module for `name` ("silu", "relu" or "lrelu")."""
    if name == "silu":
        return nn.SiLU(inplace=inplace)
    if name == "relu":
        return nn.ReLU(inplace=inplace)
    if name == "lrelu":
        return nn.LeakyReLU(0.1, inplace=inplace)
    raise AttributeError(f"Unsupported act type: {name!r} (choose silu, relu or lrelu)")


class BaseConv(nn.Module):
    """Conv2d ("same" padding for odd kernels) -> BatchNorm2d -> activation."""

    # Training through the fused BatchNorm+SiLU kernel where it applies (fused_bn_silu.fusable); set by
    # use_fused_bn_act from the device policy. A plain attribute, so the state_dict keys stay upstream's.
    fused_bn_act = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ksize: int,
        stride: int,
        groups: int = 1,
        bias: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=ksize,
            stride=stride,
            padding=(ksize - 1) // 2,
            groups=groups,
            bias=bias,
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = get_activation(act, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.fused_bn_act and fusable(x, self.bn, self.act):
            return batch_norm_silu(x, self.bn)
        return self.act(self.bn(x))

    def fuseforward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward once BatchNorm has been folded into `conv` (see fuse_model)."""
        return self.act(self.conv(x))


def use_fused_bn_act(model: nn.Module, enabled: bool) -> int:
    """Switch every BaseConv of `model` to (or off) the fused BatchNorm+SiLU kernel; returns how many."""
    convs = [module for module in model.modules() if isinstance(module, BaseConv)]
    for conv in convs:
        conv.fused_bn_act = enabled
    return len(convs)


class DWConv(nn.Module):
    """Depthwise conv followed by a pointwise conv, each a BaseConv."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int, stride: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.dconv = BaseConv(in_channels, in_channels, ksize, stride, groups=in_channels, act=act)
        self.pconv = BaseConv(in_channels, out_channels, 1, 1, groups=1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pconv(self.dconv(x))


def conv_type(depthwise: bool) -> type:
    """The 3x3 conv flavour a module uses: DWConv when depthwise, else BaseConv."""
    return DWConv if depthwise else BaseConv


class Bottleneck(nn.Module):
    """1x1 conv then 3x3 conv, with a residual add when shapes allow and `shortcut` is on."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv2 = conv_type(depthwise)(hidden, out_channels, 3, stride=1, act=act)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class ResLayer(nn.Module):
    """Darknet-53 residual unit: halve channels with 1x1, restore with 3x3, add the input."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        mid = in_channels // 2
        self.layer1 = BaseConv(in_channels, mid, ksize=1, stride=1, act="lrelu")
        self.layer2 = BaseConv(mid, in_channels, ksize=3, stride=1, act="lrelu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer2(self.layer1(x))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: concat the input with stride-1 max pools of several sizes."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int] = (5, 9, 13),
        activation: str = "silu",
    ) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=activation)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
                               for k in cascade_kernel_sizes(kernel_sizes))
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1, stride=1, act=activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        pooled = [x]
        for pool in self.m:  # each pool widens the previous one's window: 5, then 5 of 5 = 9, then 13
            pooled.append(pool(pooled[-1]))
        return self.conv2(torch.cat(pooled, dim=1))


def cascade_kernel_sizes(kernel_sizes: Sequence[int]) -> List[int]:
    """Stride-1 max-pool sizes that, applied one after another, give pools of `kernel_sizes`.

    A k-pool of an m-pool is an (m + k - 1)-pool (padding is -inf, so borders agree too): (5, 9, 13) becomes
    three 5-pools, a quarter of the comparisons for the same values.
    """
    steps, previous = [], 1
    for size in kernel_sizes:
        if size % 2 == 0 or size <= previous:
            raise ValueError(f"SPP kernel sizes must be odd and increasing, got {tuple(kernel_sizes)}")
        steps.append(size - previous + 1)
        previous = size
    return steps


class CSPLayer(nn.Module):
    """Cross-stage partial block: a bottleneck branch and a 1x1 bypass, concatenated then fused."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n: int = 1,
        shortcut: bool = True,
        expansion: float = 0.5,
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv2 = BaseConv(in_channels, hidden, 1, stride=1, act=act)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1, stride=1, act=act)
        self.m = nn.Sequential(
            *(Bottleneck(hidden, hidden, shortcut, 1.0, depthwise, act=act) for _ in range(n))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bottleneck_branch = self.m(self.conv1(x))
        bypass_branch = self.conv2(x)
        return self.conv3(torch.cat((bottleneck_branch, bypass_branch), dim=1))


class Focus(nn.Module):
    """Space-to-depth stem: four pixel-parity sub-images stacked on channels, then a conv."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 1, stride: int = 1, act: str = "silu") -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, ksize, stride, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Parity order (row, col) = (0,0), (1,0), (0,1), (1,1): pretrained stem weights expect it.
        sub_images = (x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2])
        return self.conv(torch.cat(sub_images, dim=1))
