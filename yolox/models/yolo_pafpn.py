"""YOLOPAFPN: CSPDarknet plus a top-down / bottom-up path-aggregation neck."""
from typing import Sequence, Tuple

import torch
from torch import nn

from .darknet import CSPDarknet
from .network_blocks import BaseConv, CSPLayer, conv_type

__all__ = ["YOLOPAFPN", "P2_CHANNELS"]

# Channels (before the width multiplier) of the optional stride-4 output.
P2_CHANNELS = 128


class YOLOPAFPN(nn.Module):
    """Returns (P3, P4, P5) features at strides 8, 16, 32 with int(256/512/1024 * width) channels.

    With p2=True a fourth output follows: P2 at stride 4 with int(128 * width) channels, the top-down
    path carried one level further onto the backbone's dark2. The modules of P3-P5 and what they
    compute are unchanged; the new ones (reduce_conv2, C3_p2) exist only when p2 is on.
    """

    def __init__(
        self,
        depth: float = 1.0,
        width: float = 1.0,
        in_features: Sequence[str] = ("dark3", "dark4", "dark5"),
        in_channels: Sequence[int] = (256, 512, 1024),
        depthwise: bool = False,
        act: str = "silu",
        p2: bool = False,
    ) -> None:
        super().__init__()
        self.p2 = p2
        out_features = ("dark2", *in_features) if p2 else in_features
        self.backbone = CSPDarknet(depth, width, out_features=out_features, depthwise=depthwise, act=act)
        self.in_features = in_features
        self.in_channels = in_channels
        Conv = conv_type(depthwise)
        c0, c1, c2 = (int(ch * width) for ch in in_channels)
        n = round(3 * depth)

        def csp(in_ch: int, out_ch: int) -> CSPLayer:
            return CSPLayer(in_ch, out_ch, n, shortcut=False, depthwise=depthwise, act=act)

        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c2, c1, 1, 1, act=act)
        self.C3_p4 = csp(2 * c1, c1)
        self.reduce_conv1 = BaseConv(c1, c0, 1, 1, act=act)
        self.C3_p3 = csp(2 * c0, c0)
        self.bu_conv2 = Conv(c0, c0, 3, 2, act=act)
        self.C3_n3 = csp(2 * c0, c1)
        self.bu_conv1 = Conv(c1, c1, 3, 2, act=act)
        self.C3_n4 = csp(2 * c1, c2)
        if p2:
            # registered last, so the standard keys keep their order and official weights fine-tune into them
            cp = int(P2_CHANNELS * width)
            self.reduce_conv2 = BaseConv(c0, cp, 1, 1, act=act)
            self.C3_p2 = csp(cp + self.backbone.stage_channels["dark2"], cp)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = self.backbone(x)
        x2, x1, x0 = (features[name] for name in self.in_features)

        fpn_out0 = self.lateral_conv0(x0)
        f_out0 = self.C3_p4(torch.cat([self.upsample(fpn_out0), x1], 1))
        fpn_out1 = self.reduce_conv1(f_out0)
        pan_out2 = self.C3_p3(torch.cat([self.upsample(fpn_out1), x2], 1))
        pan_out1 = self.C3_n3(torch.cat([self.bu_conv2(pan_out2), fpn_out1], 1))
        pan_out0 = self.C3_n4(torch.cat([self.bu_conv1(pan_out1), fpn_out0], 1))
        if not self.p2:
            return pan_out2, pan_out1, pan_out0
        p2_out = self.C3_p2(torch.cat([self.upsample(self.reduce_conv2(pan_out2)), features["dark2"]], 1))
        return pan_out2, pan_out1, pan_out0, p2_out
