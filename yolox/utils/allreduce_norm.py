"""Average normalisation-layer statistics (BatchNorm, InstanceNorm) across processes.

DDP runs with broadcast_buffers=False, so every rank's BatchNorm running statistics drift apart;
the trainer averages them at the end of every epoch, so every rank checkpoints and evaluates the same model.
"""
from collections import OrderedDict
from typing import Dict, Optional

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["get_async_norm_states", "all_reduce", "all_reduce_norm", "NORM_TYPES"]

NORM_TYPES = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def get_async_norm_states(module: nn.Module) -> Dict[str, torch.Tensor]:
    """State entries (weights, biases, running stats) of every normalisation layer, by full name."""
    states = OrderedDict()
    for name, child in module.named_modules():
        if isinstance(child, NORM_TYPES):
            for key, value in child.state_dict().items():
                states[f"{name}.{key}"] = value
    return states


def _reduce_device(tensor: torch.Tensor) -> torch.device:
    """gloo reduces host tensors; nccl reduces device tensors where they are."""
    return torch.device("cpu") if dist.get_backend() == "gloo" else tensor.device


def all_reduce(named_tensors: Dict[str, torch.Tensor], op: str = "mean") -> Dict[str, torch.Tensor]:
    """Sum (op="sum") or average (op="mean") a dict of tensors over all processes.

    Rank 0's key order is used everywhere so the flattened buffers line up.
    """
    world_size = _world_size()
    if world_size == 1 or not named_tensors:
        return named_tensors
    keys = [list(named_tensors.keys())]
    dist.broadcast_object_list(keys, src=0)
    keys = keys[0]
    tensors = [named_tensors[key] for key in keys]
    device = _reduce_device(tensors[0])
    flat = torch.cat([t.detach().reshape(-1).to(device=device, dtype=torch.float64 if
                                                  device.type == "cpu" else torch.float32)
                      for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    if op == "mean":
        flat /= world_size
    reduced = OrderedDict()
    offset = 0
    for key, original in zip(keys, tensors):
        count = original.numel()
        reduced[key] = flat[offset:offset + count].view_as(original).to(original.device, original.dtype)
        offset += count
    return reduced


def all_reduce_norm(module: nn.Module, states: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Average the normalisation statistics of `module` over all processes (no-op for one)."""
    if _world_size() == 1:
        return
    states = get_async_norm_states(module) if states is None else states
    module.load_state_dict(all_reduce(states, op="mean"), strict=False)
