"""Backbones: CSPDarknet (the YOLOX family) and Darknet-21/53 (yolov3)."""
from typing import Dict, List, Sequence

import torch
from torch import nn

from .network_blocks import BaseConv, CSPLayer, Focus, ResLayer, SPPBottleneck, conv_type

__all__ = ["CSPDarknet", "Darknet"]

_STAGES = ("stem", "dark2", "dark3", "dark4", "dark5")


def _select(stage_outputs: Dict[str, torch.Tensor], out_features: Sequence[str]) -> Dict[str, torch.Tensor]:
    return {name: feat for name, feat in stage_outputs.items() if name in out_features}


def _run_stages(module: nn.Module, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    stage_outputs = {}
    for name in _STAGES:
        x = getattr(module, name)(x)
        stage_outputs[name] = x
    return stage_outputs


class CSPDarknet(nn.Module):
    """Focus stem and four CSP stages (strides 4 to 32); returns the features named in `out_features`."""

    def __init__(
        self,
        dep_mul: float,
        wid_mul: float,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        depthwise: bool = False,
        act: str = "silu",
    ) -> None:
        super().__init__()
        assert out_features, "please provide output features of Darknet"
        self.out_features = out_features
        Conv = conv_type(depthwise)
        c = int(wid_mul * 64)
        n = max(round(dep_mul * 3), 1)
        # output channels per stage, for necks that tap a stage (not in the state_dict)
        self.stage_channels = {"stem": c, "dark2": 2 * c, "dark3": 4 * c, "dark4": 8 * c, "dark5": 16 * c}

        self.stem = Focus(3, c, ksize=3, act=act)
        self.dark2 = self._csp_stage(Conv, c, 2 * c, n, depthwise, act)
        self.dark3 = self._csp_stage(Conv, 2 * c, 4 * c, 3 * n, depthwise, act)
        self.dark4 = self._csp_stage(Conv, 4 * c, 8 * c, 3 * n, depthwise, act)
        self.dark5 = nn.Sequential(
            Conv(8 * c, 16 * c, 3, 2, act=act),
            SPPBottleneck(16 * c, 16 * c, activation=act),
            CSPLayer(16 * c, 16 * c, n=n, shortcut=False, depthwise=depthwise, act=act),
        )

    @staticmethod
    def _csp_stage(Conv: type, in_ch: int, out_ch: int, n: int, depthwise: bool, act: str) -> nn.Sequential:
        return nn.Sequential(
            Conv(in_ch, out_ch, 3, 2, act=act),
            CSPLayer(out_ch, out_ch, n=n, depthwise=depthwise, act=act),
        )

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return _select(_run_stages(self, x), self.out_features)


class Darknet(nn.Module):
    """Darknet-21/53 with LeakyReLU everywhere; dark5 ends in an SPP block (yolov3 baseline)."""

    depth2blocks = {21: [1, 2, 2, 1], 53: [2, 8, 8, 4]}

    def __init__(
        self,
        depth: int,
        in_channels: int = 3,
        stem_out_channels: int = 32,
        out_features: Sequence[str] = ("dark3", "dark4", "dark5"),
    ) -> None:
        super().__init__()
        assert out_features, "please provide output features of Darknet"
        self.out_features = out_features
        blocks = self.depth2blocks[depth]
        c = stem_out_channels
        self.stem = nn.Sequential(
            BaseConv(in_channels, c, ksize=3, stride=1, act="lrelu"),
            *self.make_group_layer(c, num_blocks=1, stride=2),
        )
        self.dark2 = nn.Sequential(*self.make_group_layer(2 * c, blocks[0], stride=2))
        self.dark3 = nn.Sequential(*self.make_group_layer(4 * c, blocks[1], stride=2))
        self.dark4 = nn.Sequential(*self.make_group_layer(8 * c, blocks[2], stride=2))
        self.dark5 = nn.Sequential(
            *self.make_group_layer(16 * c, blocks[3], stride=2),
            *self.make_spp_block([16 * c, 32 * c], 32 * c),
        )

    @staticmethod
    def make_group_layer(in_channels: int, num_blocks: int, stride: int = 1) -> List[nn.Module]:
        """A strided conv doubling the channels, then `num_blocks` residual units."""
        out_channels = 2 * in_channels
        layers: List[nn.Module] = [BaseConv(in_channels, out_channels, ksize=3, stride=stride, act="lrelu")]
        layers.extend(ResLayer(out_channels) for _ in range(num_blocks))
        return layers

    @staticmethod
    def make_spp_block(filters: Sequence[int], in_filters: int) -> List[nn.Module]:
        """1x1 / 3x3 convs around an SPP block; ends with filters[0] channels."""
        narrow, wide = filters
        return [
            BaseConv(in_filters, narrow, 1, stride=1, act="lrelu"),
            BaseConv(narrow, wide, 3, stride=1, act="lrelu"),
            SPPBottleneck(wide, narrow, activation="lrelu"),
            BaseConv(narrow, wide, 3, stride=1, act="lrelu"),
            BaseConv(wide, narrow, 1, stride=1, act="lrelu"),
        ]

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return _select(_run_stages(self, x), self.out_features)
