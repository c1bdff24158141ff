"""Running meters for the training log, and host memory figures.

Meters accept Python numbers or 0-dim tensors. Tensors are stored as they are (detached) and only
converted to Python floats when a statistic is read, so updating a meter never waits for the
device; the trainer reads them at print intervals only.
"""
import time
from collections import defaultdict, deque
from typing import Deque, Dict, Optional, Union

import numpy as np
import psutil
import torch
from loguru import logger

__all__ = ["AverageMeter", "MeterBuffer", "mem_usage", "occupy_mem"]

Number = Union[float, int, torch.Tensor]


def _to_float(value: Number) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def mem_usage() -> float:
    """Host memory in use, GiB."""
    return psutil.virtual_memory().used / 1024 ** 3


class AverageMeter:
    """A window of recent values plus a running total and count."""

    def __init__(self, window_size: int = 50):
        self._window: Deque[Number] = deque(maxlen=window_size)
        self._total: Number = 0.0
        self._count = 0

    def update(self, value: Number) -> None:
        if isinstance(value, torch.Tensor):
            value = value.detach()
        self._window.append(value)
        self._count += 1
        self._total = self._total + value

    def _window_floats(self) -> np.ndarray:
        return np.array(self.window_values(), dtype=np.float64)

    def window_values(self) -> list:
        """The window's values as floats; tensors are read back in one transfer, not one each."""
        tensors = [v for v in self._window if isinstance(v, torch.Tensor)]
        if len(tensors) != len(self._window) or not tensors:
            return [_to_float(v) for v in self._window]
        return torch.stack([t.float() for t in tensors]).cpu().tolist()

    @property
    def median(self) -> Optional[float]:
        return float(np.median(self._window_floats())) if self._window else None

    @property
    def avg(self) -> Optional[float]:
        return float(self._window_floats().mean()) if self._window else None

    @property
    def global_avg(self) -> Optional[float]:
        return _to_float(self._total) / self._count if self._count else None

    @property
    def latest(self) -> Optional[float]:
        return _to_float(self._window[-1]) if self._window else None

    @property
    def total(self) -> float:
        return _to_float(self._total)

    def reset(self) -> None:
        self._window.clear()
        self._total = 0.0
        self._count = 0

    def clear(self) -> None:
        """Empty the window; keep the running total for global_avg."""
        self._window.clear()


class MeterBuffer(defaultdict):
    """Named AverageMeters created on first use."""

    def __init__(self, window_size: int = 20):
        super().__init__(lambda: AverageMeter(window_size=window_size))
        self.window_size = window_size

    def reset(self) -> None:
        for meter in self.values():
            meter.reset()

    def get_filtered_meter(self, filter_key: str = "time") -> Dict[str, AverageMeter]:
        return {name: meter for name, meter in self.items() if filter_key in name}

    def update(self, values: Optional[Dict[str, Number]] = None, **kwargs) -> None:
        merged = dict(values or {})
        merged.update(kwargs)
        for name, value in merged.items():
            self[name].update(value)

    def clear_meters(self) -> None:
        for meter in self.values():
            meter.clear()


def occupy_mem(policy, mem_ratio: float = 0.9) -> None:
    """Reserve about mem_ratio of the device memory in the caching allocator up front (`-o`), so
    other processes cannot take it mid-run. Only meaningful where the policy's device caches
    allocations (CUDA); elsewhere it logs and does nothing."""
    if policy.kind != "cuda":
        logger.info(f"--occupy has no effect on {policy.kind}: only CUDA keeps freed memory reserved")
        return
    free_bytes = int(policy.memory_limit() * mem_ratio) - policy.memory_allocated()
    if free_bytes <= 0:
        return
    block = torch.empty(free_bytes // 4, dtype=torch.float32, device=policy.device)
    del block
    time.sleep(5)
