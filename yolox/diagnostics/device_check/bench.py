"""What every part of the check shares: the device, the fixed CPU model and batch, and the injected faults."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from yolox.diagnostics.device_check.fixture import CraterBatch
from yolox.utils.device import DevicePolicy

Detections = List[Optional[torch.Tensor]]


@dataclass(frozen=True)
class Faults:
    """Faults injected on the device side only: the seams through which the tests check the check itself.

    `device_model` is called on every model the device side builds (a hook that perturbs an op, ...);
    `device_detections` maps the device's detections of each batch of the full evaluation. A leaking memory
    backend goes in through the policy (build_policy(memory=...)).
    """

    device_model: Optional[Callable[[nn.Module], None]] = None
    device_detections: Optional[Callable[[Detections], Detections]] = None


@dataclass
class Bench:
    """The fixed inputs of one check run; `policy` says where the device side runs and how."""

    policy: DevicePolicy
    model: nn.Module                      # the fixed model on the CPU, eval mode; never trained in place
    batch: CraterBatch
    faults: Faults = field(default_factory=Faults)

    @property
    def device(self) -> torch.device:
        return self.policy.device

    def cpu_model(self, train: bool) -> nn.Module:
        """A fresh copy of the fixed model on the CPU (train or eval mode)."""
        return copy.deepcopy(self.model).train(train)

    def device_model(self, train: bool) -> nn.Module:
        """A fresh copy on the device, laid out as the policy trains (channels_last or not), faults applied."""
        model = self.policy.to(copy.deepcopy(self.model))
        if self.policy.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.faults.device_model is not None:
            self.faults.device_model(model)
        return model.train(train)

    def pair(self, train: bool) -> Tuple[nn.Module, nn.Module]:
        """(device model, CPU model), both fresh copies in the same mode."""
        return self.device_model(train), self.cpu_model(train)

    def on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.policy.to(tensor)
