"""Training guards: a step with a non-finite loss or gradient is skipped and counted, a run of them restores
the last good state at a lower learning rate, and non-finite weights are never written to a checkpoint.

MPS users report losses that turn NaN on that backend only; without a guard one such step poisons every
weight and the run trains on to AP 0. The verdict is one device value per step: read before the optimizer
step where the optimizer cannot skip a step itself, or one step later where it can (a fused optimizer given
`found_inf`), so that a GPU step never waits for it. The state a restore returns to is copied on the device
itself (one batched copy, no host wait).
"""
from dataclasses import dataclass
from typing import Iterable, List, Mapping, Optional

import torch
from loguru import logger
from torch import nn

from yolox.core.training_errors import TrainingDiverged
from yolox.utils.device import LateReader

__all__ = ["NonFiniteGuard", "GuardCounts", "all_finite", "finite_flag", "nonfinite_entries"]

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


def finite_flag(tensors: Iterable[Optional[torch.Tensor]]) -> torch.Tensor:
    """A 0-d bool tensor on the tensors' device: every floating-point value finite. No host read; one batched
    norm per device (a NaN or inf anywhere makes its tensor's norm non-finite)."""
    values = [t.detach() for t in tensors if t is not None and t.is_floating_point()]
    if not values:
        return torch.tensor(True)
    norms = torch._foreach_norm(values)
    return torch.isfinite(torch.stack([norm.float() for norm in norms])).all()


def all_finite(tensors: Iterable[Optional[torch.Tensor]]) -> bool:
    """True when every floating-point tensor holds only finite values (one host read in all)."""
    return bool(finite_flag(tensors))


def nonfinite_entries(state: Mapping[str, object]) -> List[str]:
    """Names of the floating-point tensors in a state dict that hold NaN or inf."""
    return [name for name, value in state.items()
            if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all())]


class StateCopy:
    """Copies, on their own device, of the tensors a restore needs: weights, EMA and optimizer state."""

    def __init__(self) -> None:
        self.sources: List[torch.Tensor] = []
        self.copies: List[torch.Tensor] = []

    def refresh(self, sources: List[torch.Tensor]) -> None:
        if [t.shape for t in sources] != [t.shape for t in self.sources]:
            self.copies = [t.detach().clone() for t in sources]
        else:
            with torch.no_grad():
                torch._foreach_copy_(self.copies, [t.detach() for t in sources])
        self.sources = sources

    def restore(self) -> None:
        with torch.no_grad():
            torch._foreach_copy_(self.sources, self.copies)


def _state_tensors(model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module]) -> List[torch.Tensor]:
    tensors = [*model.parameters(), *model.buffers()]
    if ema is not None:
        tensors += [*ema.parameters(), *ema.buffers()]
    for param_state in optimizer.state.values():
        tensors += [value for value in param_state.values() if torch.is_tensor(value)]
    return tensors


class NonFiniteGuard:
    """Decides per step whether its update may be applied, and restores the last good state when needed.

    Read-before-step: `step_is_finite(loss, model)` after backward, the step applied only on True. Read late:
    the step passes `finite(loss, model)` to a fused optimizer as found_inf and hands the same flag to
    `count_late`, which counts the previous step's verdict. `lr_scale` multiplies the scheduler's learning rate.
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
        self._snapshot: Optional[StateCopy] = None
        self._late: Optional[LateReader] = None

    def finite(self, loss: torch.Tensor, model: nn.Module, check_grads: bool = True) -> torch.Tensor:
        """The step's verdict as a device flag: the loss and (with `check_grads`) every gradient finite. A
        gradient scaler handles its own overflowing gradients: pass check_grads=False then."""
        grads = [param.grad for param in model.parameters() if param.grad is not None] if check_grads else []
        return finite_flag([loss.detach(), *grads])

    def step_is_finite(self, loss: torch.Tensor, model: nn.Module, check_grads: bool = True) -> bool:
        """The verdict read now (one host wait); False counts a skipped step."""
        return self.count(bool(self.finite(loss, model, check_grads)))

    def count(self, finite: bool) -> bool:
        """Count one step's verdict; returns it."""
        if finite:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        self.counts.skipped_steps += 1
        return False

    def count_late(self, finite: torch.Tensor) -> None:
        """Queue this step's verdict and count the previous step's, read without waiting for this step."""
        if self._late is None:
            self._late = LateReader(finite.device)
        previous = self._late.swap(finite)
        if previous is not None:
            self.count(bool(previous))

    def flush(self) -> None:
        """Count the verdict still queued (at the end of training)."""
        if self._late is not None:
            previous = self._late.swap(None)
            if previous is not None:
                self.count(bool(previous))

    def needs_restore(self) -> bool:
        return self.in_a_row >= self.patience

    def after_good_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module],
                        check_finite: bool = True) -> None:
        """Count an applied step; every `snapshot_every` of them, copy the state to return to (where
        `check_finite`, only a finite one: with a late verdict the optimizer kept non-finite updates out)."""
        self.good_since_snapshot += 1
        if self._snapshot is not None and self.good_since_snapshot < self.snapshot_every:
            return
        weights = [*model.parameters(), *(ema.parameters() if ema is not None else [])]
        if check_finite and not all_finite(weights):
            return
        self._snapshot = self._snapshot or StateCopy()
        self._snapshot.refresh(_state_tensors(model, optimizer, ema))
        self.good_since_snapshot = 0

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer, ema: Optional[nn.Module],
                where: str) -> None:
        """Load the last good state, lower the learning rate, warn naming `where`; stop after max_restores."""
        usable = self._snapshot is not None and all_finite(self._snapshot.copies)
        if not usable or self.counts.restores >= self.max_restores:
            raise TrainingDiverged(
                f"training diverged at {where}: {self.in_a_row} non-finite steps in a row after "
                f"{self.counts.restores} restores; checkpoints written before this are finite and kept. Lower "
                "basic_lr_per_img, lengthen warmup_epochs, or train without mixed precision")
        self._snapshot.restore()
        self.counts.restores += 1
        self.lr_scale *= self.lr_factor
        self.in_a_row = 0
        logger.warning(f"{where}: {self.patience} non-finite steps in a row: restored the last good weights, EMA "
                       f"and optimizer state and lowered the learning rate to {self.lr_scale:g}x the schedule "
                       f"({self.counts.line()})")

    def checkpoint_is_finite(self, state: Mapping[str, object], name: str) -> bool:
        """False (counted and warned) when a model state about to be saved holds NaN or inf (one host read)."""
        if all_finite(value for value in state.values() if torch.is_tensor(value)):
            return True
        bad = nonfinite_entries(state)
        self.counts.refused_checkpoints += 1
        logger.warning(f"checkpoint {name} not written: {len(bad)} weight tensor(s) are not finite "
                       f"(first: {bad[0]}); the previous checkpoint of that name is kept")
        return False
