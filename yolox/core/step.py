"""One optimizer step: forward and loss, backward, the non-finite guard, the optimizer and the EMA."""
from typing import Any, Dict, Optional

import torch
from loguru import logger
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.profiler import record_function

from yolox.core.checkpointer import restore_ema
from yolox.core.guards import NonFiniteGuard
from yolox.core.training_errors import RanksOutOfMemory
from yolox.utils.device import DevicePolicy
from yolox.utils.dist import average_gradients, ranks_where
from yolox.utils.ema import ModelEMA, unwrap_model

__all__ = ["TrainStep"]


class TrainStep:
    """Owns what one step changes: the model's weights, the optimizer and its scaler, the EMA, the guard.

    `model` may be wrapped in DistributedDataParallel (`distributed`), whose gradients are averaged only after
    every rank has its own, so that a rank out of memory never leaves the others waiting in a collective.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, policy: DevicePolicy,
                 scaler: "torch.amp.GradScaler", ema: Optional[ModelEMA], guard: NonFiniteGuard,
                 distributed: bool) -> None:
        self.model = model
        self.optimizer = optimizer
        self.policy = policy
        self.scaler = scaler
        self.ema = ema
        self.guard = guard
        self.distributed = distributed

    @classmethod
    def build(cls, model: nn.Module, optimizer: torch.optim.Optimizer, policy: DevicePolicy,
              scaler: "torch.amp.GradScaler", guard: NonFiniteGuard, exp, resume, updates_before: int,
              distributed: bool) -> "TrainStep":
        """The step of a run: the model wrapped for several processes, the exp's EMA (restored from `resume`,
        else its ramp restarted at `updates_before`), and the model compiled where the policy says so."""
        if distributed:
            device_ids = [policy.device.index] if policy.device.type == "cuda" else None
            model = DDP(model, device_ids=device_ids, broadcast_buffers=False)
        ema = None
        if exp.ema:
            ema = ModelEMA(model, exp.ema_decay, ramp_updates=exp.ema_ramp_updates)
            restore_ema(ema, resume, updates_before)
        model.train()
        compiled = policy.compile_model_parts(unwrap_model(model))  # after the EMA copy, which stays eager
        if compiled:
            logger.info(f"compiling {compiled} part(s) of the model (the first steps at each new size take longer)")
        return cls(model, optimizer, policy, scaler, ema, guard, distributed)

    def state(self) -> Dict[str, Any]:
        """What a checkpoint keeps of the step: the weights kept (the EMA's, where there is one) under "model",
        the trained ones under "train_model", the optimizer and the scaler."""
        live = unwrap_model(self.model).state_dict()
        weights = {"model": live} if self.ema is None else {"model": self.ema.ema.state_dict(), "train_model": live,
                                                            "ema_updates": self.ema.updates}
        return {**weights, "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Train on one batch; returns the model's loss outputs (tensors, not read back from the device).

        Where the optimizer skips a step on the device itself (`late`), nothing here waits for the device: the
        verdict goes to the optimizer as found_inf and the guard counts it one step later. Elsewhere it is read
        before the optimizer step.
        """
        with record_function("trainer.forward_backward"):
            outputs = self.forward_backward(images, targets)
        finite = self.guard.finite(outputs["total_loss"], self.model, check_grads=not self.scaler.is_enabled())
        if self.late:
            self._apply(finite)
            self.guard.count_late(finite)
        elif self.guard.count(bool(finite)):
            self._apply(None)
        else:
            self.optimizer.zero_grad(set_to_none=True)
        return outputs

    @property
    def late(self) -> bool:
        """The policy reads verdicts late and this optimizer (fused) takes found_inf."""
        return self.policy.late_guard and bool(self.optimizer.defaults.get("fused"))

    def _apply(self, finite: Optional[torch.Tensor]) -> None:
        with record_function("trainer.optimizer"):
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)    # its own found_inf covers a non-finite loss's gradients
                self.scaler.update()
            elif finite is not None:
                self._step_unless(finite)
            else:
                self.optimizer.step()
        if self.ema is not None:
            with record_function("trainer.ema"):
                self.ema.update(self.model)
        self.guard.after_good_step(unwrap_model(self.model), self.optimizer, self.ema_module,
                                   check_finite=finite is None)

    def _step_unless(self, finite: torch.Tensor) -> None:
        """A fused optimizer step that the device skips when `finite` is False (the GradScaler's mechanism)."""
        self.optimizer.grad_scale = None
        self.optimizer.found_inf = (~finite).float()
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.grad_scale, self.optimizer.found_inf

    def restore_if_needed(self, where: str) -> None:
        """After `patience` skipped steps in a row: the last good weights, EMA and optimizer state."""
        if self.guard.needs_restore():
            self.guard.restore(unwrap_model(self.model), self.optimizer, self.ema_module, where=where)

    @property
    def ema_module(self) -> Optional[nn.Module]:
        return self.ema.ema if self.ema is not None else None

    def local_forward_backward(self, images: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Losses of this process's batch, its gradients left in .grad (scaled when the policy scales)."""
        with self.policy.autocast():
            outputs = self.model(images, targets)
        self.optimizer.zero_grad()
        self.scaler.scale(outputs["total_loss"]).backward()
        return outputs

    def forward_backward(self, images: torch.Tensor, targets: torch.Tensor) -> Dict[str, Any]:
        """Loss and gradients; across processes the ranks first agree that none ran out of memory, then all
        average (the cost: gradient communication no longer overlaps backward)."""
        if not self.distributed:
            return self.local_forward_backward(images, targets)
        local_error = None
        try:
            with self.model.no_sync():
                outputs = self.local_forward_backward(images, targets)
        except Exception as error:  # noqa: BLE001 - only out-of-memory errors are agreed on
            if not self.policy.is_oom(error):
                raise
            local_error = error
        failed = ranks_where(local_error is not None)
        if failed:
            raise RanksOutOfMemory(failed, local_error) from local_error
        average_gradients(self.model.parameters())
        return outputs
