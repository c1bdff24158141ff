"""Exponential moving average of model weights with upstream YOLOX's decay ramp."""
import math
from copy import deepcopy
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["ModelEMA", "is_parallel", "unwrap_model"]

_PARALLEL_TYPES = (nn.DataParallel, nn.parallel.DistributedDataParallel)
# upstream YOLOX's ramp length, in updates
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
        self._pairs: Optional[Tuple[nn.Module, List[torch.Tensor], List[torch.Tensor]]] = None

    def decay_at(self, updates: int) -> float:
        return self.decay * (1.0 - math.exp(-updates / self.ramp_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        keep = self.decay_at(self.updates)
        ema_values, model_values = self._paired_values(unwrap_model(model))
        # one fused kernel per step for all tensors: ema += (1 - keep) * (model - ema)
        torch._foreach_lerp_(ema_values, model_values, 1.0 - keep)

    def _paired_values(self, model: nn.Module) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """The floating-point parameters and buffers of the EMA and of `model`, in pairs, built once per model:
        two state_dict() calls per step cost the host more than the update itself (yolox-s: ~9 ms). The lists
        hold the Parameter and buffer objects, which stay valid when a move swaps their .data or a
        load_state_dict copies into them."""
        if self._pairs is None or self._pairs[0] is not model:
            ema_tensors, model_tensors = _named_tensors(self.ema), _named_tensors(model)
            names = [name for name, value in self.ema.state_dict().items() if value.dtype.is_floating_point]
            self._pairs = (model, [ema_tensors[name] for name in names], [model_tensors[name] for name in names])
        return self._pairs[1], self._pairs[2]

    def state_dict(self) -> Dict[str, object]:
        """What exact resume needs: the averaged weights and the update count."""
        return {"ema": self.ema.state_dict(), "updates": self.updates, "decay": self.decay}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.ema.load_state_dict(state["ema"])
        self.updates = int(state["updates"])
        self.decay = float(state.get("decay", self.decay))


def _named_tensors(module: nn.Module) -> Dict[str, torch.Tensor]:
    """Parameters and buffers by their state_dict names."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}
