"""The ways a training run stops on its own: divergence, and memory that no batch size fits."""
from typing import List, Optional

import torch

__all__ = ["TrainingDiverged", "TrainingOutOfMemory", "RanksOutOfMemory", "first_line"]


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type name when it has none."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class TrainingDiverged(RuntimeError):
    """The loss stays non-finite even after the last good state was restored at a lower learning rate."""


class TrainingOutOfMemory(RuntimeError):
    """Out of memory even at one image per process."""


class RanksOutOfMemory(torch.OutOfMemoryError):
    """Raised on every rank of a multi-process run when at least one rank ran out of memory in a step."""

    def __init__(self, ranks: List[int], local_error: Optional[BaseException]):
        detail = f": {first_line(local_error)}" if local_error is not None else ""
        super().__init__(f"out of memory on rank{'s' if len(ranks) > 1 else ''} "
                         f"{', '.join(map(str, ranks))}{detail}")
        self.ranks = ranks
