"""Images that turned unreadable after the dataset check (e.g. truncated mid-run), shared by every loader
worker so the training process can count and name them."""
from typing import List

import torch


class SkippedImages:
    """One flag per image in shared memory: set by whichever process met the unreadable file."""

    def __init__(self, num_images: int):
        # shared memory survives fork and is handed to spawned loader workers by reference
        self.flags = torch.zeros(max(num_images, 1), dtype=torch.uint8).share_memory_()

    def mark(self, index: int) -> bool:
        """Flag `index`; True the first time (so the warning naming it is logged once)."""
        first = not bool(self.flags[index])
        self.flags[index] = 1
        return first

    def is_marked(self, index: int) -> bool:
        return bool(self.flags[index])

    def indices(self) -> List[int]:
        return self.flags.nonzero().flatten().tolist()

    def __len__(self) -> int:
        return int(self.flags.sum())
