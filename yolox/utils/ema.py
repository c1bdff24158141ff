"""Exponential moving average of model weights with upstream's decay ramp (training.md §6)."""
import math
from copy import deepcopy
from typing import Dict

import torch
from torch import nn

__all__ = ["ModelEMA", "is_parallel", "unwrap_model"]

_PARALLEL_TYPES = (nn.DataParallel, nn.parallel.DistributedDataParallel)
# upstream's ramp length, in updates (training.md §6)
RAMP_UPDATES = 2000.0


def is_parallel(model: nn.Module) -> bool:
    """True for a DataParallel or DistributedDataParallel wrapper."""
    return isinstance(model, _PARALLEL_TYPES)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a (Distributed)DataParallel wrapper, or the model itself."""
    return model.module if is_parallel(model) else model


class ModelEMA:
    """Keeps `ema`, a copy of the model whose floating-point state follows the training weights.

    The decay ramps up as decay * (1 - exp(-updates / ramp_updates)) so early averages are not dominated
    by the random initial weights (upstream's ramp: 2000 updates). Integer buffers keep the value they
    had when copied.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, updates: int = 0,
                 ramp_updates: float = RAMP_UPDATES):
        self.ema = deepcopy(unwrap_model(model)).eval()
        for param in self.ema.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.updates = updates
        if ramp_updates <= 0:
            raise ValueError(f"EMA ramp_updates must be positive, got {ramp_updates}: fix ema_ramp_updates in the exp")
        self.ramp_updates = float(ramp_updates)

    def decay_at(self, updates: int) -> float:
        return self.decay * (1.0 - math.exp(-updates / self.ramp_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        keep = self.decay_at(self.updates)
        model_state = unwrap_model(model).state_dict()
        ema_values, model_values = [], []
        for name, ema_value in self.ema.state_dict().items():
            if ema_value.dtype.is_floating_point:
                ema_values.append(ema_value)
                model_values.append(model_state[name].detach())
        # one fused kernel per step for all tensors instead of two per tensor
        torch._foreach_mul_(ema_values, keep)
        torch._foreach_add_(ema_values, model_values, alpha=1.0 - keep)

    def state_dict(self) -> Dict[str, object]:
        """What exact resume needs: the averaged weights and the update count."""
        return {"ema": self.ema.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))
