"""YOLOXHead: decoupled anchor-free detection head (per level: stem, cls branch, reg/obj branch)."""
import colorsys
import math
from typing import List, Optional, Sequence, Tuple, Union

import cv2
import torch
from torch import nn

from .assignment import CENTER_RADIUS, simota_assign
from .losses import IOUloss
from .network_blocks import BaseConv, conv_type
from . import yolox_loss

__all__ = ["YOLOXHead"]

# Legacy tensor-type names (x.type()) that upstream callers may still pass as `dtype`.
_LEGACY_TYPE_NAMES = {
    "HalfTensor": torch.float16,
    "BFloat16Tensor": torch.bfloat16,
    "FloatTensor": torch.float32,
    "DoubleTensor": torch.float64,
}


def _as_dtype(dtype: Union[None, str, torch.dtype], default: torch.dtype) -> torch.dtype:
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        return dtype
    return _LEGACY_TYPE_NAMES[dtype.rsplit(".", 1)[-1]]


def _decode_boxes(raw: torch.Tensor, grid: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """[B, A, 5+C] raw reg -> (cx, cy, w, h) in input pixels; the score channels pass through."""
    xy = (raw[..., :2] + grid) * strides
    wh = torch.exp(raw[..., 2:4]) * strides
    return torch.cat([xy, wh, raw[..., 4:]], dim=-1)


class YOLOXHead(nn.Module):
    """Eval: [B, N, 5+C] with sigmoided scores (decoded boxes by default). Train: the loss 6-tuple."""

    def __init__(
        self,
        num_classes: int,
        width: float = 1.0,
        strides: Sequence[int] = (8, 16, 32),
        in_channels: Sequence[int] = (256, 512, 1024),
        act: str = "silu",
        depthwise: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.decode_in_inference = True
        self.strides = list(strides)
        Conv = conv_type(depthwise)
        hidden = int(256 * width)
        levels = range(len(in_channels))

        def branch() -> nn.Sequential:
            return nn.Sequential(Conv(hidden, hidden, 3, 1, act=act), Conv(hidden, hidden, 3, 1, act=act))

        def pred(out_channels: int) -> nn.Conv2d:
            return nn.Conv2d(hidden, out_channels, kernel_size=1, stride=1, padding=0)

        # Creation order fixes the state_dict order: cls_convs, reg_convs, cls/reg/obj preds, stems.
        self.cls_convs = nn.ModuleList(branch() for _ in levels)
        self.reg_convs = nn.ModuleList(branch() for _ in levels)
        self.cls_preds = nn.ModuleList(pred(num_classes) for _ in levels)
        self.reg_preds = nn.ModuleList(pred(4) for _ in levels)
        self.obj_preds = nn.ModuleList(pred(1) for _ in levels)
        self.stems = nn.ModuleList(BaseConv(int(ch * width), hidden, 1, 1, act=act) for ch in in_channels)

        self.use_l1 = False
        # SimOTA's candidate window (half-side in strides); a plain attribute, not in the state_dict
        self.center_radius = CENTER_RADIUS
        self.l1_loss = nn.L1Loss(reduction="none")
        self.bcewithlog_loss = nn.BCEWithLogitsLoss(reduction="none")
        self.iou_loss = IOUloss(reduction="none")
        self.grids: List[torch.Tensor] = [torch.zeros(1)] * len(in_channels)
        self._grid_keys: List[Optional[tuple]] = [None] * len(in_channels)
        self.hw: List[Tuple[int, int]] = []

    def initialize_biases(self, prior_prob: float) -> None:
        """Set cls and obj biases so that sigmoid(bias) = prior_prob."""
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        with torch.no_grad():
            for conv in (*self.cls_preds, *self.obj_preds):
                conv.bias.fill_(bias_value)

    def _level_outputs(self, k: int, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(reg, obj, cls) raw maps of level k."""
        x = self.stems[k](x)
        cls_output = self.cls_preds[k](self.cls_convs[k](x))
        reg_feat = self.reg_convs[k](x)
        return self.reg_preds[k](reg_feat), self.obj_preds[k](reg_feat), cls_output

    def level_grid(self, k: int, h: int, w: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """[1, h*w, 2] (x, y) cell indices of level k, row-major; cached per level."""
        key = (h, w, dtype, device)
        if self._grid_keys[k] != key:  # h*w alone is ambiguous: 52x80 and 80x52 levels have equal sizes
            ys, xs = torch.meshgrid(
                torch.arange(h, device=device, dtype=dtype),
                torch.arange(w, device=device, dtype=dtype),
                indexing="ij",
            )
            self.grids[k] = torch.stack((xs, ys), dim=2).reshape(1, h * w, 2)
            self._grid_keys[k] = key
        return self.grids[k]

    def forward(
        self,
        xin: Sequence[torch.Tensor],
        labels: Optional[torch.Tensor] = None,
        imgs: Optional[torch.Tensor] = None,
    ):
        if self.training:
            return self._train_forward(xin, labels)
        outputs = []
        self.hw = []
        for k, x in enumerate(xin):
            reg, obj, cls = self._level_outputs(k, x)
            level = torch.cat([reg, obj.sigmoid(), cls.sigmoid()], dim=1)
            self.hw.append(tuple(level.shape[-2:]))
            outputs.append(level.flatten(start_dim=2))
        outputs = torch.cat(outputs, dim=2).permute(0, 2, 1)
        if self.decode_in_inference:
            return self.decode_outputs(outputs, dtype=xin[0].dtype)
        return outputs

    def decode_outputs(self, outputs: torch.Tensor, dtype: Union[None, str, torch.dtype] = None) -> torch.Tensor:
        """Decode undecoded eval outputs [B, N, 5+C] laid out as in `self.hw` (set by the last eval forward)."""
        dtype = _as_dtype(dtype, outputs.dtype)
        grids, strides = [], []
        for k, ((h, w), stride) in enumerate(zip(self.hw, self.strides)):
            grids.append(self.level_grid(k, h, w, dtype, outputs.device))
            strides.append(torch.full((1, h * w, 1), stride, dtype=dtype, device=outputs.device))
        return _decode_boxes(outputs, torch.cat(grids, dim=1), torch.cat(strides, dim=1))

    def get_output_and_grid(
        self, output: torch.Tensor, k: int, stride: int, dtype: torch.dtype
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """[B, 5+C, h, w] level output -> ([B, h*w, 5+C] with decoded boxes, [1, h*w, 2] grid)."""
        h, w = output.shape[-2:]
        grid = self.level_grid(k, h, w, dtype, output.device)
        output = output.flatten(start_dim=2).permute(0, 2, 1)
        return _decode_boxes(output, grid, stride), grid

    def train_outputs(self, xin: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        """Train-mode tensors over all levels: outputs [B, A, 5+C] (decoded boxes, obj/cls logits),
        x_shifts, y_shifts, expanded_strides [1, A], origin_preds [B, A, 4] raw reg (None unless use_l1)."""
        # decode and loss in at least float32: under fp16 autocast exp(w) and IoU areas (w * h > 65504) overflow
        dtype = torch.promote_types(xin[0].dtype, torch.float32)
        outputs, x_shifts, y_shifts, expanded_strides, origin_preds = [], [], [], [], []
        for k, (stride, x) in enumerate(zip(self.strides, xin)):
            reg, obj, cls = (part.to(dtype) for part in self._level_outputs(k, x))
            output, grid = self.get_output_and_grid(torch.cat([reg, obj, cls], dim=1), k, stride, dtype)
            outputs.append(output)
            x_shifts.append(grid[..., 0])
            y_shifts.append(grid[..., 1])
            expanded_strides.append(torch.full_like(grid[..., 0], stride))
            if self.use_l1:
                origin_preds.append(reg.flatten(start_dim=2).permute(0, 2, 1).clone())
        return (
            torch.cat(outputs, dim=1),
            torch.cat(x_shifts, dim=1),
            torch.cat(y_shifts, dim=1),
            torch.cat(expanded_strides, dim=1),
            torch.cat(origin_preds, dim=1) if self.use_l1 else None,
        )

    def _train_forward(self, xin: Sequence[torch.Tensor], labels: Optional[torch.Tensor]):
        if labels is None:
            raise ValueError("YOLOXHead in train mode needs labels [B, max_labels, 5]")
        outputs, x_shifts, y_shifts, expanded_strides, origin_preds = self.train_outputs(xin)
        return yolox_loss.compute_losses(
            outputs,
            labels,
            x_shifts,
            y_shifts,
            expanded_strides,
            origin_preds,
            num_classes=self.num_classes,
            use_l1=self.use_l1,
            iou_loss=self.iou_loss,
            center_radius=self.center_radius,
        )

    @torch.no_grad()
    def visualize_assign_result(
        self, xin: Sequence[torch.Tensor], labels: torch.Tensor, imgs: torch.Tensor, save_prefix: str = "assign_vis_"
    ) -> List[str]:
        """Draw each image's ground truths and the anchor centres SimOTA assigns to them; returns the PNG paths."""
        outputs, x_shifts, y_shifts, expanded_strides, _ = self.train_outputs(xin)
        assignment = simota_assign(outputs, labels, x_shifts, y_shifts, expanded_strides,
                                   center_radius=self.center_radius)
        centres = torch.stack([(x_shifts[0] + 0.5) * expanded_strides[0], (y_shifts[0] + 0.5) * expanded_strides[0]], 1)
        paths = []
        for image_idx, image in enumerate(imgs):
            fg = assignment.fg_mask[image_idx]
            path = f"{save_prefix}{image_idx}.png"
            _draw_assignment(
                image, labels[image_idx], centres[fg], assignment.matched_gt_inds[image_idx][fg], path
            )
            paths.append(path)
        return paths


def _draw_assignment(
    image: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor, gt_indices: torch.Tensor, path: str
) -> None:
    """BGR CHW image with one colour per ground truth: its box and the centres of its anchors."""
    canvas = image.permute(1, 2, 0).clamp(0, 255).to(torch.uint8).cpu().numpy().copy()
    gt_rows = labels[labels.sum(dim=1) > 0].cpu().tolist()
    for gt_idx, (_cls, cx, cy, w, h) in enumerate(gt_rows):
        colour = _palette_colour(gt_idx)
        top_left = (int(cx - w / 2), int(cy - h / 2))
        bottom_right = (int(cx + w / 2), int(cy + h / 2))
        cv2.rectangle(canvas, top_left, bottom_right, colour, 2)
    for (x, y), gt_idx in zip(centres.cpu().tolist(), gt_indices.cpu().tolist()):
        cv2.circle(canvas, (int(x), int(y)), 3, _palette_colour(gt_idx), -1)
    cv2.imwrite(path, canvas)


def _palette_colour(index: int) -> Tuple[int, int, int]:
    """A distinct, bright BGR colour per index (golden-angle hue steps)."""
    hue = (index * 137.508) % 360
    r, g, b = colorsys.hsv_to_rgb(hue / 360, 0.9, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)
