"""The side CUDA stream that overlaps host-to-device copies with compute."""
from __future__ import annotations

from typing import TYPE_CHECKING, ContextManager, Optional

import torch

if TYPE_CHECKING:
    from yolox.utils.device.policy import DevicePolicy


class CopyStream:
    """A side CUDA stream for host-to-device copies, and the hand-over to the compute stream."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def context(self) -> ContextManager:
        """Work queued inside runs on the side stream."""
        return torch.cuda.stream(self.stream)

    def hand_over(self, *tensors: Optional[torch.Tensor]) -> None:
        """Make the compute stream wait for the copies and keep their memory alive until it is done."""
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                tensor.record_stream(compute)


def make_copy_stream(policy: DevicePolicy) -> Optional[CopyStream]:
    """A CopyStream when the policy prefetches on a side stream and its tensors live on CUDA, else None."""
    if policy.prefetch_stream and policy.device.type == "cuda":
        return CopyStream(policy.device)
    return None
