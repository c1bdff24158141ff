"""RunOptions: everything about one training run that is not the experiment and not the device.

Both training commands turn their flags into one RunOptions; `yolox.core.run.train` and the trainer read
it and nothing else of the command line.
"""
import time
from dataclasses import dataclass, field, replace
from typing import Optional

__all__ = ["RunOptions"]


@dataclass(frozen=True)
class RunOptions:
    """One run's settings besides the exp; the trainer never reads the command line."""

    experiment_name: str
    batch_size: int
    ckpt: Optional[str] = None                # weights to start from, or the checkpoint to resume
    resume: bool = False
    start_epoch: Optional[int] = None         # 1-based epoch a resume starts at (-e), else the checkpoint's
    devices: int = 1                          # training processes on this machine (one per GPU)
    num_machines: int = 1
    machine_rank: int = 0
    dist_backend: Optional[str] = None        # None: the device policy's
    dist_url: Optional[str] = None            # None: a free local port
    cache: Optional[str] = None               # "ram" or "disk": training images cached before the loaders start
    logger: str = "tensorboard"               # metric logger
    trust_ckpt: bool = False                  # allow checkpoints that need full unpickling
    occupy: bool = False                      # reserve GPU memory first (CUDA)
    deterministic: bool = False               # repeatable kernels where the device has them (slower)
    time_budget_s: Optional[float] = None     # --time: wall-clock budget counted from `started_at`
    max_epoch_cap: Optional[int] = None       # a --time plan chooses at most this many epochs
    # when the run's clock starts (wall time): the commands give their process's start; made in Python, now
    started_at: float = field(default_factory=time.time)

    def with_batch_size(self, batch_size: int) -> "RunOptions":
        return replace(self, batch_size=int(batch_size))
