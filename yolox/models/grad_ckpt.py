"""Activation (gradient) checkpointing for the backbone stages and the neck blocks.

A checkpointed block keeps only its input during forward and recomputes its activations in
backward: the same losses and gradients for less memory and about a third more compute. Module
names and state_dict keys are unchanged, so checkpoints load either way.
"""
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Dict, Iterator, List, Tuple

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .darknet import CSPDarknet, Darknet
from .yolo_fpn import YOLOFPN
from .yolo_pafpn import YOLOPAFPN

__all__ = ["enable_grad_checkpointing", "disable_grad_checkpointing", "checkpointed_modules"]

_BACKBONES = (CSPDarknet, Darknet)
_NECKS = (YOLOPAFPN, YOLOFPN)


@contextmanager
def _batchnorm_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Leave BatchNorm running statistics untouched while a block is recomputed in backward."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for norm in norms:
        norm.momentum = 0.0     # running = (1 - 0) * running + 0 * batch: unchanged
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, saved):
            norm.momentum = momentum
            if tracked is not None:
                norm.num_batches_tracked.copy_(tracked)


def _contexts(module: nn.Module) -> Tuple[object, object]:
    return nullcontext(), _batchnorm_stats_frozen(module)


class _CheckpointedForward:
    """Mixin placed before a block's own class: checkpoints forward while training with gradients."""

    def forward(self, *inputs):
        if self.training and torch.is_grad_enabled():
            return checkpoint(super().forward, *inputs, use_reentrant=False, context_fn=partial(_contexts, self))
        return super().forward(*inputs)


_CHECKPOINTED_CLASSES: Dict[type, type] = {}


def _checkpointed_class(cls: type) -> type:
    if cls not in _CHECKPOINTED_CLASSES:
        _CHECKPOINTED_CLASSES[cls] = type(f"Checkpointed{cls.__name__}", (_CheckpointedForward, cls), {})
    return _CHECKPOINTED_CLASSES[cls]


def checkpointed_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, module) of the blocks to checkpoint: every backbone stage and every neck block with weights."""
    targets = []
    for prefix, module in model.named_modules():
        if isinstance(module, _BACKBONES):
            targets += [(f"{prefix}.{name}".lstrip("."), child) for name, child in module.named_children()]
        elif isinstance(module, _NECKS):
            targets += [(f"{prefix}.{name}".lstrip("."), child) for name, child in module.named_children()
                        if not isinstance(child, _BACKBONES) and next(child.parameters(), None) is not None]
    return targets


def enable_grad_checkpointing(model: nn.Module) -> List[str]:
    """Checkpoint the backbone stages and neck blocks of a YOLOX model in place; returns their names."""
    names = []
    for name, module in checkpointed_modules(model):
        if not isinstance(module, _CheckpointedForward):
            module.__class__ = _checkpointed_class(type(module))
        names.append(name)
    if not names:
        raise ValueError(f"{type(model).__name__} has no CSPDarknet/Darknet backbone or PAFPN/FPN neck to checkpoint")
    return names


def disable_grad_checkpointing(model: nn.Module) -> None:
    """Undo enable_grad_checkpointing."""
    for module in model.modules():
        if isinstance(module, _CheckpointedForward):
            module.__class__ = type(module).__mro__[2]
