"""Full fp32 arithmetic for comparisons: TF32 off while a device's results are compared with the CPU's."""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Iterator, Sequence, Tuple

import torch

Flag = Tuple[Any, str]


def exact_fp32() -> ContextManager[None]:
    """TF32 matmuls and cuDNN convolutions off inside (cuDNN's default is on: 10-bit mantissas, so fp32
    tolerances would not hold); the previous flags come back on exit. No effect off CUDA.

    Uses the flags torch's TF32 settings were made with: the legacy `allow_tf32` ones, or, once something set the
    `fp32_precision` ones (torch 2.9+), those, since torch then refuses to read the legacy flags."""
    legacy = ((torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"))
    try:
        for owner, name in legacy:
            getattr(owner, name)
    except RuntimeError:
        return _set_inside(((torch.backends.cuda.matmul, "fp32_precision"),
                            (torch.backends.cudnn.conv, "fp32_precision")), "ieee")
    return _set_inside(legacy, False)


@contextlib.contextmanager
def _set_inside(flags: Sequence[Flag], value: Any) -> Iterator[None]:
    """Every flag set to `value` inside the block, each back to its own previous value on exit."""
    saved = [getattr(owner, name) for owner, name in flags]
    for owner, name in flags:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for (owner, name), previous in zip(flags, saved):
            setattr(owner, name, previous)
