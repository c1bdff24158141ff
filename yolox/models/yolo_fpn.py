"""YOLOFPN: Darknet-53 plus the two-step top-down neck of the yolov3 baseline."""
from typing import Sequence, Tuple

import torch
from torch import nn

from .darknet import Darknet
from .network_blocks import BaseConv

__all__ = ["YOLOFPN"]


def _embedding(filters: Sequence[int], in_filters: int) -> nn.Sequential:
    """Five alternating 1x1 / 3x3 convs ending on filters[0] channels."""
    narrow, wide = filters
    return nn.Sequential(
        BaseConv(in_filters, narrow, 1, 1, act="lrelu"),
        BaseConv(narrow, wide, 3, 1, act="lrelu"),
        BaseConv(wide, narrow, 1, 1, act="lrelu"),
        BaseConv(narrow, wide, 3, 1, act="lrelu"),
        BaseConv(wide, narrow, 1, 1, act="lrelu"),
    )


class YOLOFPN(nn.Module):
    """Returns (128, 256, 512)-channel features at strides 8, 16, 32."""

    def __init__(self, depth: int = 53, in_features: Sequence[str] = ("dark3", "dark4", "dark5")) -> None:
        super().__init__()
        self.backbone = Darknet(depth)
        self.in_features = in_features
        self.out1_cbl = BaseConv(512, 256, 1, 1, act="lrelu")
        self.out1 = _embedding([256, 512], 512 + 256)
        self.out2_cbl = BaseConv(256, 128, 1, 1, act="lrelu")
        self.out2 = _embedding([128, 256], 256 + 128)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        x2, x1, x0 = (features[name] for name in self.in_features)
        out_dark4 = self.out1(torch.cat([self.upsample(self.out1_cbl(x0)), x1], 1))
        out_dark3 = self.out2(torch.cat([self.upsample(self.out2_cbl(out_dark4)), x2], 1))
        return out_dark3, out_dark4, x0
