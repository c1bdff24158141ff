"""At each evaluation on a device other than the CPU: the first evaluation batch also runs on the CPU, and the
detections the user would get from each are compared.

Evaluation that disagrees with the CPU on the same weights is a reported MPS fault (the same checkpoint scoring
differently per backend). Both passes run in exact fp32 outside autocast (TF32 off), so what is left between them
is float rounding in another order. What is compared is what the evaluation reports: detections above the score
threshold after NMS, matched one to one by IoU. Raw head outputs are not compared: a background anchor's box is
exp() of an unconstrained number, wild and irrelevant, and rounding there is no disagreement.

Rounding still moves a detection across the score or the NMS threshold now and then, so each measure is chosen to
shrug that off and to fail on what a user would notice: detections lost or invented, boxes moved by a sizeable
part of their size, scores scaled, non-finite values.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Dict, Iterator, List, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call

from yolox.utils.boxes import bboxes_iou, postprocess
from yolox.utils.device import DevicePolicy
from yolox.utils.device.exact_math import exact_fp32

__all__ = ["CrossCheck", "compare_outputs", "cross_check_evaluation"]

CHECK_DEVICE = "yolox-check-device --device {kind}"
# a detection is found when a detection of the other pass overlaps it this much: AP50's criterion
MATCH_IOU = 0.5
# a detection counts as found when the other pass has it scoring at least threshold / NEAR: rounding changes a
# score by a few percent, so a detection just above the threshold on one side is still near it on the other
NEAR = 2.0
# share of each pass's detections the other must find: NMS may keep a neighbour instead of a box whose scores
# differ by rounding, which can cost a few boxes of a dense cluster; a real fault loses most of them
FOUND_FLOOR = 0.9
# box and score errors are read at this quantile of the matched pairs, so that the few pairs where NMS kept a
# neighbour (up to 1 - FOUND_FLOOR of them) do not decide, while a fault that moves most boxes does
QUANTILE = 0.9
# box error: each corner's difference over the box's side along that axis. Noise of fp16 size (1e-2 of each head
# output's scale) reached 0.058 on real weights and craters; a 3 px shift is 0.1 on a 30 px crater, and craters
# are mostly smaller
BOX_TOLERANCE = 0.1
# boxes narrower than this (px) count as this wide, so a degenerate box cannot make the ratio infinite
MIN_SIDE_PX = 2.0
# score error: |log(device score / CPU score)|: fp16-size noise reached 0.26 there, a score scaled by 2 gives 0.69
SCORE_TOLERANCE = 0.4


@dataclass(frozen=True)
class CrossCheck:
    """The two passes' detections on one batch, compared; `agree` when every measure is within its tolerance."""

    device_detections: int
    cpu_detections: int
    matched: int
    recall: Optional[float]        # share of the CPU's detections the device found (None: there were none)
    precision: Optional[float]     # share of the device's detections the CPU found (None: there were none)
    box_error: float               # QUANTILE of matched pairs' largest corner error over the box side
    max_box_diff_px: float         # largest corner difference of any matched pair, pixels (for the record)
    score_error: float             # QUANTILE of matched pairs' |log score ratio|
    non_finite_device: int
    non_finite_cpu: int
    conf_thre: float
    nms_thre: float

    @property
    def agree(self) -> bool:
        return not self._failures()

    def row(self) -> Dict[str, object]:
        """Plain JSON for eval_history.jsonl: every figure, its tolerance, and the verdict (figures are finite:
        matched pairs overlap, so their boxes and scores are)."""
        figures = {key: (round(value, 6) if isinstance(value, float) else value) for key, value in asdict(self).items()}
        return {"agree": self.agree, **figures, "found_floor": FOUND_FLOOR, "box_tolerance": BOX_TOLERANCE,
                "score_tolerance": SCORE_TOLERANCE, "quantile": QUANTILE}

    def warning(self, device: str) -> str:
        """For a check that disagrees, one line: how large the disagreement is and the command that finds the part
        at fault (`device`: the policy's device, e.g. "cuda:0", or its kind)."""
        kind = str(device).split(":")[0]
        return (f"evaluation on {device} disagrees with the CPU on the first batch (both in fp32): "
                f"{'; '.join(self._failures())}; run `{CHECK_DEVICE.format(kind=kind)}` to find the part that differs")

    def _failures(self) -> List[str]:
        failures = []
        if self.non_finite_device or self.non_finite_cpu:
            failures.append(f"non-finite values: {self.non_finite_device} on the device, {self.non_finite_cpu} on "
                            f"the CPU{' (the weights themselves are broken)' if self.non_finite_cpu else ''}")
        for share, whose in ((self.recall, "CPU's"), (self.precision, "device's")):
            if share is not None and share < FOUND_FLOOR:
                failures.append(f"{share:.0%} of the {whose} detections found by the other pass "
                                f"(at least {FOUND_FLOOR:.0%})")
        if self.box_error > BOX_TOLERANCE:
            failures.append(f"boxes off by {self.box_error:.1%} of their size (up to {self.max_box_diff_px:.1f} px; "
                            f"tolerance {BOX_TOLERANCE:.0%})")
        if self.score_error > SCORE_TOLERANCE:
            failures.append(f"scores off by a factor {math.exp(self.score_error):.2f} "
                            f"(tolerance {math.exp(SCORE_TOLERANCE):.2f})")
        return failures


def cross_check_evaluation(model: nn.Module, images: torch.Tensor, policy: DevicePolicy, *, num_classes: int,
                           conf_thre: float, nms_thre: float) -> Optional[CrossCheck]:
    """`images` through the eval-mode `model` on the policy's device and on the CPU (a copy of its weights), both in
    exact fp32 outside autocast, compared as detections; None on a CPU policy."""
    if policy.kind == "cpu":
        return None
    images = images.float()
    cpu_state = {name: tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype)
                 for name, tensor in {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()}
    with _exact_passes(policy.device):
        on_device = model(policy.to(images))
        # where the policy decodes and suppresses on the CPU, so does the evaluation it stands for
        on_device = on_device.cpu() if policy.postprocess_on_cpu else on_device
        on_cpu = functional_call(model, cpu_state, (images.cpu(),))
        return compare_outputs(on_device, on_cpu, num_classes=num_classes, conf_thre=conf_thre, nms_thre=nms_thre)


def compare_outputs(on_device: torch.Tensor, on_cpu: torch.Tensor, *, num_classes: int, conf_thre: float,
                    nms_thre: float) -> CrossCheck:
    """Compare two decoded eval outputs [B, anchors, 5 + classes] as detections (postprocess on each one's device)."""
    loose = conf_thre / NEAR
    device_rows = _detections(on_device, num_classes, loose, nms_thre)
    cpu_rows = _detections(on_cpu, num_classes, loose, nms_thre)
    non_finite = [int(torch.isnan(output).sum()) + sum(int((~torch.isfinite(r)).sum()) for r in rows)
                  for output, rows in ((on_device, device_rows), (on_cpu, cpu_rows))]
    pairs = [_match(d, c) for d, c in zip(device_rows, cpu_rows)]
    box_errors, box_px, score_errors = _pair_errors(device_rows, cpu_rows, pairs, conf_thre)
    return CrossCheck(
        device_detections=_count(device_rows, conf_thre), cpu_detections=_count(cpu_rows, conf_thre),
        matched=len(box_errors), recall=_found(cpu_rows, [c for _, c in pairs], conf_thre),
        precision=_found(device_rows, [d for d, _ in pairs], conf_thre),
        box_error=_quantile(box_errors), max_box_diff_px=float(box_px.max()) if len(box_px) else 0.0,
        score_error=_quantile(score_errors), non_finite_device=non_finite[0], non_finite_cpu=non_finite[1],
        conf_thre=float(conf_thre), nms_thre=float(nms_thre))


@contextlib.contextmanager
def _exact_passes(device: torch.device) -> Iterator[None]:
    """No gradients, no TF32 and no autocast on the device, whatever the caller has switched on."""
    with torch.no_grad(), exact_fp32(), torch.autocast(device.type, enabled=False):
        yield


def _detections(output: torch.Tensor, num_classes: int, conf_thre: float, nms_thre: float) -> List[torch.Tensor]:
    """Per image, [k, 7] float64 CPU rows (x1, y1, x2, y2, obj, cls_conf, cls) above `conf_thre` after NMS."""
    rows = postprocess(output.detach().float().clone(), num_classes, conf_thre, nms_thre)
    return [torch.zeros(0, 7, dtype=torch.float64) if r is None else r.detach().cpu().double() for r in rows]


def _match(device: torch.Tensor, cpu: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Greedy one-to-one matching by IoU (highest first, same class, at least MATCH_IOU): (device rows, CPU rows)."""
    if not len(device) or not len(cpu):
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    iou = bboxes_iou(device[:, :4], cpu[:, :4]).nan_to_num(0.0)
    iou[device[:, None, 6] != cpu[None, :, 6]] = 0.0
    candidates = (iou >= MATCH_IOU).nonzero()
    order = iou[candidates[:, 0], candidates[:, 1]].argsort(descending=True)
    taken_device, taken_cpu, pairs = set(), set(), []
    for d, c in candidates[order].tolist():
        if d not in taken_device and c not in taken_cpu:
            taken_device.add(d)
            taken_cpu.add(c)
            pairs.append((d, c))
    matched = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)
    return matched[:, 0], matched[:, 1]


def _scores(rows: torch.Tensor) -> torch.Tensor:
    return rows[:, 4] * rows[:, 5]


def _pair_errors(device_rows: List[torch.Tensor], cpu_rows: List[torch.Tensor],
                 pairs: List[Tuple[torch.Tensor, torch.Tensor]], conf_thre: float) -> Tuple[torch.Tensor, ...]:
    """Over the matched pairs with a detection above `conf_thre`: box error relative to the CPU box's sides, box
    difference in px, |log score ratio|."""
    device = torch.cat([rows[d] for rows, (d, _) in zip(device_rows, pairs)])
    cpu = torch.cat([rows[c] for rows, (_, c) in zip(cpu_rows, pairs)])
    shown = torch.maximum(_scores(device), _scores(cpu)) >= conf_thre
    device, cpu = device[shown], cpu[shown]
    corners = (device[:, :4] - cpu[:, :4]).abs()
    sides = (cpu[:, 2:4] - cpu[:, 0:2]).clamp_min(MIN_SIDE_PX).repeat(1, 2)
    ratio = (_scores(device).clamp_min(1e-30) / _scores(cpu).clamp_min(1e-30)).log().abs()
    return (corners / sides).amax(dim=1), corners.amax(dim=1), ratio


def _count(rows: List[torch.Tensor], conf_thre: float) -> int:
    return sum(int((_scores(image_rows) >= conf_thre).sum()) for image_rows in rows)


def _found(rows: List[torch.Tensor], matched: List[torch.Tensor], conf_thre: float) -> Optional[float]:
    """Share of the rows scoring at least `conf_thre` that are among the matched ones (None when there are none)."""
    total = found = 0
    for image_rows, image_matched in zip(rows, matched):
        shown = _scores(image_rows) >= conf_thre
        total += int(shown.sum())
        found += int(shown[image_matched].sum())
    return found / total if total else None


def _quantile(values: torch.Tensor) -> float:
    return float(torch.quantile(values, QUANTILE)) if len(values) else 0.0
