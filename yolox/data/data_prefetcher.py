"""Moves training batches to the policy's device one step ahead of the training loop."""
from typing import Optional, Tuple

import torch

__all__ = ["DataPrefetcher"]

Batch = Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]


class DataPrefetcher:
    """Wraps a training loader; `next()` returns (images, targets) on the device, None at the end.

    The following batch is fetched (and, when the policy asks for a side stream, copied on it)
    while the caller works on the current one. img_info and ids are dropped.
    """

    def __init__(self, loader, policy):
        self.loader = iter(loader)
        self.policy = policy
        self.stream = _side_stream(policy)
        self._next: Batch = (None, None)
        self._preload()

    def _preload(self) -> None:
        try:
            images, targets = next(self.loader)[:2]
        except StopIteration:
            self._next = (None, None)
            return
        if self.stream is None:
            self._next = (self.policy.to(images), self.policy.to(targets))
            return
        with self.stream.context():
            self._next = (self.policy.to(images), self.policy.to(targets))

    def next(self) -> Batch:
        if self.stream is not None:
            self.stream.hand_over(*self._next)
        batch = self._next
        self._preload()
        return batch


def _side_stream(policy):
    """A copy stream from the device layer when the policy prefetches on one, else None."""
    from yolox.utils.device import make_copy_stream

    return make_copy_stream(policy)
