"""Box regression losses used by the YOLOX head."""
import torch
from torch import nn

_REDUCTIONS = ("none", "mean", "sum")
_LOSS_TYPES = ("iou", "giou")


def _corners(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left and bottom-right corners of (cx, cy, w, h) boxes."""
    half_wh = boxes[:, 2:] / 2
    return boxes[:, :2] - half_wh, boxes[:, :2] + half_wh


class IOUloss(nn.Module):
    """IoU loss on (cx, cy, w, h) boxes: 1 - IoU^2 ("iou") or 1 - clamp(GIoU, -1, 1) ("giou")."""

    def __init__(self, reduction: str = "none", loss_type: str = "iou") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"IOUloss reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if loss_type not in _LOSS_TYPES:
            raise ValueError(f"IOUloss loss_type must be one of {_LOSS_TYPES}, got {loss_type!r}")
        self.reduction = reduction
        self.loss_type = loss_type

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape[0] != target.shape[0]:
            raise ValueError(f"IOUloss needs as many predictions as targets, got {pred.shape[0]} and {target.shape[0]}")
        pred = pred.reshape(-1, 4)
        target = target.reshape(-1, 4)
        pred_tl, pred_br = _corners(pred)
        target_tl, target_br = _corners(target)
        inter_wh = (torch.min(pred_br, target_br) - torch.max(pred_tl, target_tl)).clamp(min=0)
        area_inter = _area(inter_wh)
        area_union = _area(pred[:, 2:]) + _area(target[:, 2:]) - area_inter
        iou = area_inter / (area_union + 1e-16)

        if self.loss_type == "iou":
            loss = 1 - iou**2
        else:
            area_enclose = _area(torch.max(pred_br, target_br) - torch.min(pred_tl, target_tl))
            giou = iou - (area_enclose - area_union) / area_enclose.clamp(min=1e-16)
            loss = 1 - giou.clamp(min=-1.0, max=1.0)

        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def _area(wh: torch.Tensor) -> torch.Tensor:
    """w * h of [N, 2] rows. Not .prod(dim=1): its CUDA backward checks the input for zeros, which reads a value
    back to the host and stalled every training step twice (found with the CUDA sync debug mode)."""
    return wh[:, 0] * wh[:, 1]
