"""Full fp32 arithmetic for comparisons: TF32 off while a device's results are compared with the CPU's."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """TF32 matmuls and cuDNN convolutions off inside (cuDNN's default is on: 10-bit mantissas, so fp32
    tolerances would not hold); the previous flags come back on exit. No effect off CUDA."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
