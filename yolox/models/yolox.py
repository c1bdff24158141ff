"""YOLOX detector: a feature pyramid backbone followed by the decoupled head."""
from typing import Dict, List, Optional, Union

import torch
from torch import nn

from .network_blocks import use_fused_bn_act
from .yolo_head import YOLOXHead
from .yolo_pafpn import YOLOPAFPN

__all__ = ["YOLOX"]

# Order of the head's loss tuple, which is also the order of the train-mode dict.
LOSS_KEYS = ("total_loss", "iou_loss", "conf_loss", "cls_loss", "l1_loss", "num_fg")
_DICT_ORDER = ("total_loss", "iou_loss", "l1_loss", "conf_loss", "cls_loss", "num_fg")


class YOLOX(nn.Module):
    """Train mode: dict of losses. Eval mode: [B, N, 5+C] detections before NMS."""

    def __init__(self, backbone: Optional[nn.Module] = None, head: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.backbone = YOLOPAFPN() if backbone is None else backbone
        self.head = YOLOXHead(80) if head is None else head

    def forward(
        self, x: torch.Tensor, targets: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, Dict[str, torch.Tensor]]:
        fpn_outs = self.backbone(x)
        if not self.training:
            return self.head(fpn_outs)
        if targets is None:
            raise ValueError("YOLOX in train mode needs targets [B, max_labels, 5] (class, cx, cy, w, h)")
        losses = dict(zip(LOSS_KEYS, self.head(fpn_outs, targets, x)))
        return {key: losses[key] for key in _DICT_ORDER}

    def compile_parts(self) -> List[nn.Module]:
        """The modules a device policy compiles: the backbone, whose graph depends on the input size alone. The head
        stays eager: its loss sees label rows that vary per batch, and its per-level branches share one forward
        code object, which torch.compile would recompile for every level and size until its recompile limit."""
        return [self.backbone]

    def use_fused_bn_act(self, enabled: bool) -> int:
        """Switch every BaseConv to (or off) the fused BatchNorm+SiLU kernel, as the device policy decided."""
        return use_fused_bn_act(self, enabled)

    @torch.no_grad()
    def visualize(self, x: torch.Tensor, targets: torch.Tensor, save_prefix: str = "assign_vis_") -> List[str]:
        """Save one PNG per image showing SimOTA's label assignment; returns the paths.

        Runs in the model's current mode: in train mode BatchNorm statistics update as in a training step.
        """
        return self.head.visualize_assign_result(self.backbone(x), targets, x, save_prefix)
