"""The device layer: every device-specific decision of YOLOX, made once, with a reason.

`build_policy` turns what the user asked for ("auto", "cuda:1", "mps", "cpu", --fp16, ...) and what this
machine and this torch build can do into one frozen `DevicePolicy`. The trainer, prefetcher, evaluators and
tools ask the policy instead of testing the device themselves. This package is the only place that touches
`torch.cuda` or `torch.mps`.

A policy can follow the rules of one device kind while its tensors live on another
(`build_policy("mps", tensors_on="cpu")`): that is how the MPS path is exercised on machines without a Mac.

Modules, one concept each: `selection` (which device, why unavailable), `memory` (memory backends, OOM),
`probe` (the MPS autocast probe), `streams` (the CUDA copy stream), `rng` (seeding, device RNG state),
`policy` (the frozen DevicePolicy) and `decisions` (build_policy and its per-topic decisions).
"""
from yolox.utils.device.decisions import build_policy
from yolox.utils.device.memory import (
    GIB,
    MIB,
    CudaMemory,
    MemoryBackend,
    MpsMemory,
    is_out_of_memory,
    memory_backend_for,
    mps_high_watermark_ratio,
)
from yolox.utils.device.late_read import LateReader
from yolox.utils.device.policy import DECISIONS, DevicePolicy
from yolox.utils.device.probe import probe_mps_amp
from yolox.utils.device.rng import seed_everything
from yolox.utils.device.selection import KINDS, DeviceUnavailableError, device_count, select_device
from yolox.utils.device.streams import CopyStream, make_copy_stream

__all__ = [
    "DeviceUnavailableError",
    "DevicePolicy",
    "LateReader",
    "MemoryBackend",
    "build_policy",
    "device_count",
    "make_copy_stream",
    "memory_backend_for",
    "probe_mps_amp",
    "select_device",
]
