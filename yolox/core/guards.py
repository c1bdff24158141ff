"""Training guards: a step with a non-finite loss or gradient is skipped and counted, a run of them restores
the last good state at a lower learning rate, and non-finite weights are never written to a checkpoint.

MPS users report losses that turn NaN on that backend only; without a guard one such step poisons every
weight and the run trains on to AP 0. The guard keeps a copy of the last good state on the CPU, so it costs
no device memory.
"""
import copy
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional

import torch
from loguru import logger
from torch import nn

from yolox.core.training_errors import TrainingDiverged

__all__ = ["NonFiniteGuard", "GuardCounts", "all_finite", "nonfinite_entries"]

# non-finite steps in a row before the last good state is restored
PATIENCE = 3
# learning-rate factor after each restore
LR_FACTOR = 0.5
# restores after which the run is stopped: the loss does not recover
MAX_RESTORES = 5
# good steps between copies of the state that a restore returns to
SNAPSHOT_EVERY = 50


@dataclass
class GuardCounts:
    skipped_steps: int = 0
    restores: int = 0
    refused_checkpoints: int = 0

    def line(self) -> str:
        return (f"non-finite steps skipped: {self.skipped_steps}, restores: {self.restores}, "
                f"checkpoints refused: {self.refused_checkpoints}")


def all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    """True when every floating-point tensor holds only finite values (one host read in all)."""
    flags = [torch.isfinite(t).all() for t in tensors if t is not None and t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def nonfinite_entries(state: Mapping[str, object]) -> List[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or inf."""
    return [name for name, value in state.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


def _cpu_copy(state: Mapping[str, object]) -> Dict[str, object]:
    return {name: value.detach().to("cpu", copy=True) if torch.is_tensor(value) else copy.deepcopy(value)
            for name, value in state.items()}


class NonFiniteGuard:
    """Decides per step whether its update may be applied, and restores the last good state when needed.

    The caller asks `step_is_finite(loss, model)` after backward and before the optimizer step; it applies
    the step only on True. `lr_scale` multiplies the scheduler's learning rate.
    """

    def __init__(self, patience: int = PATIENCE, lr_factor: float = LR_FACTOR, max_restores: int = MAX_RESTORES,
                 snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.patience = patience
        self.lr_factor = lr_factor
        self.max_restores = max_restores
        self.snapshot_every = snapshot_every
        self.counts = GuardCounts()
        self.lr_scale = 1.0
        self.in_a_row = 0
        self.good_since_snapshot = 0
        self._snapshot: Optional[Dict[str, object]] = None

    def step_is_finite(self, loss: torch.Tensor, model: nn.Module, check_grads: bool = True) -> bool:
        """True when the loss and (with `check_grads`) every gradient of `model` are finite; False counts a
        skipped step. A gradient scaler handles its own overflowing gradients: pass check_grads=False then."""
        grads = [param.grad for param in model.parameters() if param.grad is not None] if check_grads else []
        if all_finite([loss.detach(), *grads]):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.counts.skipped_steps += 1
        return False

    def needs_restore(self) -> bool:
        return self.in_a_row >= self.patience

    def after_good_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module]) -> None:
        """Count a good step; every `snapshot_every` of them, keep a copy of the state to return to."""
        self.good_since_snapshot += 1
        if self._snapshot is None or self.good_since_snapshot >= self.snapshot_every:
            self.snapshot(model, optimizer, ema)

    def snapshot(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module]) -> None:
        """Keep a CPU copy of the state to return to; a state that already holds NaN or inf is not kept."""
        if not all_finite(model.parameters()) or (ema is not None and not all_finite(ema.parameters())):
            return
        self._snapshot = {"model": _cpu_copy(model.state_dict()),
                          "optimizer": copy.deepcopy(_optimizer_state_on_cpu(optimizer)),
                          "ema": _cpu_copy(ema.state_dict()) if ema is not None else None}
        self.good_since_snapshot = 0

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module],
                where: str) -> None:
        """Load the last good state, lower the learning rate, warn naming `where`; stop after max_restores."""
        if self._snapshot is None or self.counts.restores >= self.max_restores:
            raise TrainingDiverged(
                f"training diverged at {where}: {self.in_a_row} non-finite steps in a row after "
                f"{self.counts.restores} restores; checkpoints written before this are finite and kept. Lower "
                "basic_lr_per_img, lengthen warmup_epochs, or train without mixed precision")
        model.load_state_dict(self._snapshot["model"])
        optimizer.load_state_dict(self._snapshot["optimizer"])
        if ema is not None and self._snapshot["ema"] is not None:
            ema.load_state_dict(self._snapshot["ema"])
        self.counts.restores += 1
        self.lr_scale *= self.lr_factor
        self.in_a_row = 0
        logger.warning(f"{where}: {self.patience} non-finite steps in a row: restored the last good weights, EMA "
                       f"and optimizer state and lowered the learning rate to {self.lr_scale:g}x the schedule "
                       f"({self.counts.line()})")

    def checkpoint_is_finite(self, state: Mapping[str, object], name: str) -> bool:
        """False (counted and warned) when a model state about to be saved holds NaN or inf."""
        bad = nonfinite_entries(state)
        if not bad:
            return True
        self.counts.refused_checkpoints += 1
        logger.warning(f"checkpoint {name} not written: {len(bad)} weight tensor(s) are not finite "
                       f"(first: {bad[0]}); the previous checkpoint of that name is kept")
        return False


def _optimizer_state_on_cpu(optimizer: torch.optim.Optimizer) -> dict:
    state = optimizer.state_dict()
    return {"state": {key: _cpu_copy(value) for key, value in state["state"].items()},
            "param_groups": state["param_groups"]}
