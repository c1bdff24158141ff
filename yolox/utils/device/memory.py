"""Memory backends: each device's own terms behind one small interface (tests pass a fake), and OOM recognition."""
from __future__ import annotations

import os

import psutil
import torch

MIB = 1 << 20
GIB = 1 << 30
# PyTorch's default hard limit on MPS, as a multiple of recommended_max_memory().
MPS_DEFAULT_HIGH_WATERMARK = 1.7
OOM_MESSAGES = (
    "CUDA out of memory",
    "MPS backend out of memory",
    "DefaultCPUAllocator: can't allocate memory",
)


class MemoryBackend:
    """Memory queries for one device; this base is the CPU process (RSS against available RAM)."""

    name = "cpu"

    def __init__(self) -> None:
        self._peak = 0

    def allocated(self) -> int:
        rss = psutil.Process().memory_info().rss
        self._peak = max(self._peak, rss)
        return rss

    def driver_allocated(self) -> int:
        return self.allocated()

    def peak(self) -> int:
        self.allocated()
        return self._peak

    def reset_peak(self) -> None:
        self._peak = 0

    def limit(self) -> int:
        return psutil.virtual_memory().available

    def release_cache(self) -> None:
        """The CPU allocator keeps no cache to release."""

    def synchronize(self) -> None:
        """CPU work is synchronous."""


class CudaMemory(MemoryBackend):
    """torch.cuda's caching-allocator counters for one GPU."""

    name = "cuda"

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def driver_allocated(self) -> int:
        return torch.cuda.memory_reserved(self.device)

    def peak(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)

    def reset_peak(self) -> None:
        torch.cuda.reset_peak_memory_stats(self.device)

    def limit(self) -> int:
        return torch.cuda.get_device_properties(self.device).total_memory

    def release_cache(self) -> None:
        torch.cuda.empty_cache()

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


class MpsMemory(MemoryBackend):
    """torch.mps counters; MPS has no peak counter, so the peak is the max of sampled driver memory."""

    name = "mps"

    def allocated(self) -> int:
        self.driver_allocated()
        return torch.mps.current_allocated_memory()

    def driver_allocated(self) -> int:
        driver = torch.mps.driver_allocated_memory()
        self._peak = max(self._peak, driver)
        return driver

    def peak(self) -> int:
        self.driver_allocated()
        return self._peak

    def limit(self) -> int:
        ratio = mps_high_watermark_ratio()
        if ratio == 0.0:  # limit disabled: unified memory is the only bound
            return psutil.virtual_memory().total
        return int(torch.mps.recommended_max_memory() * ratio)

    def release_cache(self) -> None:
        torch.mps.empty_cache()

    def synchronize(self) -> None:
        torch.mps.synchronize()


def mps_high_watermark_ratio() -> float:
    """PYTORCH_MPS_HIGH_WATERMARK_RATIO as torch reads it (default 1.7; 0 disables the limit)."""
    raw = os.environ.get("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "")
    try:
        return float(raw) if raw else MPS_DEFAULT_HIGH_WATERMARK
    except ValueError:
        return MPS_DEFAULT_HIGH_WATERMARK


def memory_backend_for(device: torch.device) -> MemoryBackend:
    """The memory backend that measures where tensors on `device` live."""
    if device.type == "cuda":
        return CudaMemory(device)
    if device.type == "mps":
        return MpsMemory()
    return MemoryBackend()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for out-of-memory errors of any device (CUDA, MPS, CPU), following the cause chain."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
            return True
        if isinstance(exc, RuntimeError) and any(text in str(exc) for text in OOM_MESSAGES):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False
