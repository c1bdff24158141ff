"""Moves training batches to the policy's device one step ahead of the training loop."""
from typing import Optional, Tuple

import torch

__all__ = ["DataPrefetcher", "trim_label_padding"]

Batch = Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]


class DataPrefetcher:
    """Wraps a training loader; `next()` returns (images, targets) on the device, None at the end.

    The following batch is fetched (and, when the policy asks for a side stream, copied on it)
    while the caller works on the current one. img_info and ids are dropped. A loader with a
    `batch_transform` (batched augmentation) ships uint8 items; the transform runs on the moved batch,
    on the side stream when there is one, its image half compiled when the policy says so; it cuts the target
    rows to those kept itself (BatchAugment reads that count there), as trim_label_padding does for the rest.
    """

    def __init__(self, loader, policy):
        self.loader = iter(loader)
        self.policy = policy
        self.stream = _side_stream(policy)
        self.transform = getattr(loader, "batch_transform", None)
        if self.transform is not None and policy.compile_augment:
            self.transform = self.transform.compiled(policy.compile_function)
        self._next: Optional[Batch] = (None, None)
        self._preload()

    def _preload(self) -> None:
        try:
            batch = next(self.loader)
        except StopIteration:
            self._next = (None, None)
            return
        if self.transform is None:
            batch = (batch[0], trim_label_padding(batch[1]))
        if self.stream is None:
            self._next = self._move(batch)
            return
        with self.stream.context():
            self._next = self._move(batch)

    def _move(self, batch) -> Batch:
        images, targets = self.policy.to(batch[0]), self.policy.to(batch[1])
        if self.transform is None:
            return images, targets
        return self.transform(images, targets, batch[2], upload=self.policy.upload)

    def next(self) -> Batch:
        """take() then preload()."""
        batch = self.take()
        self.preload()
        return batch

    def take(self) -> Batch:
        """The batch the last preload prepared, handed over to the compute stream; preload() the following one
        before the next take(). The trainer preloads after queuing its step, so the GPU has work while the host
        prepares the next batch."""
        if self._next is None:
            raise RuntimeError("DataPrefetcher.take() called twice without a preload() between")
        batch, self._next = self._next, None
        if self.stream is not None:
            self.stream.hand_over(*batch)
        return batch

    def preload(self) -> None:
        """Fetch the following batch and queue its copy (and augmentation)."""
        self._preload()


def trim_label_padding(targets: torch.Tensor) -> torch.Tensor:
    """Drop the all-zero label rows after the last real one in the batch ([B, max_labels, 5] host tensor).

    The loss treats padding rows as absent, so the result is unchanged, but the label assignment works on
    every row it is given: a crater exp pads to 1,000 rows for images that mostly hold tens. Done on the host
    copy, before it moves, so no device synchronisation is needed.
    """
    rows_used = (targets.sum(dim=2) > 0).sum(dim=1)
    keep = max(int(rows_used.max()), 1) if targets.shape[0] else targets.shape[1]
    return targets[:, :keep]


def _side_stream(policy):
    """A copy stream from the device layer when the policy prefetches on one, else None."""
    from yolox.utils.device import make_copy_stream

    return make_copy_stream(policy)
