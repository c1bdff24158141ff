"""At each evaluation on a device other than the CPU: the first evaluation batch is also run on the CPU.

Evaluation that disagrees with the CPU on the same weights is a reported MPS fault (the same checkpoint scoring
differently per backend); the check costs one batch and names the size of any disagreement. Both passes run in
fp32 outside autocast, so the tolerances are those of fp32 across backends.
"""
from typing import Dict, Optional

import torch
from torch import nn
from torch.func import functional_call

from yolox.utils.device import DevicePolicy

__all__ = ["BOX_TOLERANCE_PX", "SCORE_TOLERANCE", "compare_decoded", "cross_check_first_batch"]

# decoded box coordinates, pixels: the device check's fp32 forward tolerance (2e-3 head units) times the
# coarsest stride (32) is 0.06 px; a few times that still separates float noise from a shifted box
BOX_TOLERANCE_PX = 0.25
# objectness and class scores after the sigmoid (slope at most 1/4 of the logit tolerance 2e-3), with margin
SCORE_TOLERANCE = 2e-3


def compare_decoded(on_device: torch.Tensor, on_cpu: torch.Tensor) -> Dict[str, object]:
    """Largest differences of two decoded head outputs [B, anchors, 4 + 1 + classes] and whether they agree."""
    box = float((on_device[..., :4] - on_cpu[..., :4]).abs().max())
    score = float((on_device[..., 4:] - on_cpu[..., 4:]).abs().max())
    finite = bool(torch.isfinite(on_device).all())
    agree = finite and box <= BOX_TOLERANCE_PX and score <= SCORE_TOLERANCE
    return {"agree": agree, "max_box_diff_px": round(box, 5), "max_score_diff": round(score, 6),
            "box_tolerance_px": BOX_TOLERANCE_PX, "score_tolerance": SCORE_TOLERANCE}


def cross_check_first_batch(model: nn.Module, dataloader, policy: DevicePolicy) -> Optional[Dict[str, object]]:
    """The first batch of `dataloader` through `model` on the policy's device and on the CPU; None on a CPU policy."""
    if policy.kind == "cpu":
        return None
    images = next(iter(dataloader))[0].float()
    cpu_state = {name: tensor.detach().to("cpu", torch.float32 if tensor.is_floating_point() else tensor.dtype)
                 for name, tensor in {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()}
    with torch.no_grad():
        on_device = model(policy.to(images)).float().cpu()
        on_cpu = functional_call(model, cpu_state, (images,))
    return compare_decoded(on_device, on_cpu.float())
