"""The optimizer's parameter groups of a YOLOX model, and the momentum start that fused SGD needs."""
from typing import Tuple

import torch
from torch import nn

__all__ = ["split_param_groups", "start_momentum_at_zero"]


def start_momentum_at_zero(optimizer: torch.optim.Optimizer) -> None:
    """Zero SGD momentum buffers before the first step, which then sets each buffer to its gradient as SGD's
    own first step does. Fused SGD needs it: a first step the GradScaler skips (inf gradients) leaves its
    buffers unset and the next step writes NaN weights (seen with torch 2.11 on CUDA and 2.14 on the CPU)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            optimizer.state[param]["momentum_buffer"] = torch.zeros_like(param)


def split_param_groups(model: nn.Module) -> Tuple[list, list, list]:
    """(BN weights, other weights, biases) in module registration order."""
    bn_weights, weights, biases = [], [], []
    for name, module in model.named_modules():
        if isinstance(getattr(module, "bias", None), nn.Parameter):
            biases.append(module.bias)
        weight = getattr(module, "weight", None)
        if not isinstance(weight, nn.Parameter):
            continue
        if isinstance(module, nn.BatchNorm2d) or "bn" in name:
            bn_weights.append(weight)
        else:
            weights.append(weight)
    return bn_weights, weights, biases
