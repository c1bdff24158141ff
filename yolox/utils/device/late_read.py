"""Small device values read one step late, so that the host does not wait for the step that made them."""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["LateReader"]


class LateReader:
    """`swap(value)` queues the copy of a small device tensor to the host and returns the one queued at the
    previous call, waiting only for the work queued before that copy.

    On CUDA the copy lands in pinned memory behind an event, so the steps queued since keep the GPU busy while
    the host reads; elsewhere the previous tensor is read directly (the CPU computes synchronously anyway).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._pending: Optional[torch.Tensor] = None
        self._event = None

    def swap(self, value: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The host copy of the value given at the previous call (None at the first); queues `value`."""
        previous = self._take()
        if value is not None:
            self._queue(value.detach())
        return previous

    def _queue(self, value: torch.Tensor) -> None:
        if value.device.type != "cuda":
            self._pending = value
            return
        host = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
        host.copy_(value, non_blocking=True)
        self._event = torch.cuda.Event()
        self._event.record()
        self._pending = host

    def _take(self) -> Optional[torch.Tensor]:
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        if self._event is not None:
            self._event.synchronize()
            self._event = None
            return pending
        return pending.cpu()
