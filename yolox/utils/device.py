"""The device layer: every device-specific decision of YOLOX, made once, with a reason.

`build_policy` turns what the user asked for ("auto", "cuda:1", "mps", "cpu", --fp16, ...) and what this
machine and this torch build can do into one frozen `DevicePolicy`. The trainer, prefetcher, evaluators and
tools ask the policy instead of testing the device themselves. This is the only module of the package that
touches `torch.cuda` or `torch.mps`.

A policy can follow the rules of one device kind while its tensors live on another
(`build_policy("mps", tensors_on="cpu")`): that is how the MPS path is exercised on machines without a Mac.
"""
from __future__ import annotations

import os
import platform
import random
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Tuple

import numpy as np
import psutil
import torch
from loguru import logger

__all__ = [
    "DeviceUnavailableError",
    "DevicePolicy",
    "MemoryBackend",
    "build_policy",
    "device_count",
    "make_copy_stream",
    "memory_backend_for",
    "probe_mps_amp",
    "select_device",
]

KINDS = ("cuda", "mps", "cpu")
MIB = 1 << 20
GIB = 1 << 30
# PyTorch's default hard limit on MPS, as a multiple of recommended_max_memory().
MPS_DEFAULT_HIGH_WATERMARK = 1.7
# The multi-scale size changes every 10 iterations (Exp.random_size); see the cache decision below.
MPS_CACHE_RELEASE_EVERY = 10
CPU_WORKER_CAP = 2
CUDA_WORKER_FLOOR = 14
MPS_WORKER_CAP = 4
OOM_MESSAGES = (
    "CUDA out of memory",
    "MPS backend out of memory",
    "DefaultCPUAllocator: can't allocate memory",
)

ProbeFn = Callable[[torch.dtype], Tuple[bool, str]]


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used here; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------------------
# Device selection
# ----------------------------------------------------------------------------------------------------------
def _torch_version() -> Tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", str(torch.__version__))
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _cuda_unavailable_reason() -> Optional[str]:
    """None when CUDA is usable, else one line saying why not."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return (f"this torch build ({torch.__version__}) has no CUDA support (torch.version.cuda is None); "
                "install a CUDA build of torch")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but no CUDA device is usable "
                "(torch.cuda.is_available() is False: no NVIDIA driver or GPU visible; check nvidia-smi and "
                "CUDA_VISIBLE_DEVICES)")
    return None


def _mps_unavailable_reason() -> Optional[str]:
    """None when MPS is usable, else one line saying why not."""
    if not torch.backends.mps.is_built():
        system = platform.system() or sys.platform
        where = "" if sys.platform == "darwin" else f" (this machine runs {system}; MPS exists only on Apple Macs)"
        return (f"this torch build ({torch.__version__}) was built without MPS support "
                f"(torch.backends.mps.is_built() is False){where}; on a Mac install the macOS arm64 build of torch")
    if not torch.backends.mps.is_available():
        mac_version = platform.mac_ver()[0] or "unknown"
        return (f"torch is built with MPS but MPS is not available (torch.backends.mps.is_available() is False): "
                f"MPS needs Apple Silicon and macOS 12.3+ (torch 2.9+ needs macOS 14); this macOS is {mac_version}")
    return None


def _parse_request(requested: str) -> Tuple[str, Optional[int]]:
    """("auto"|"cuda"|"mps"|"cpu", index or None) from a user's device string."""
    text = (requested or "auto").strip().lower()
    match = re.fullmatch(r"(auto|cuda|gpu|mps|cpu)(?::(\d+))?", text)
    if match is None:
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N, gpu or mps")
    kind, index = match.group(1), match.group(2)
    kind = "cuda" if kind == "gpu" else kind
    if index is not None and kind in ("auto", "cpu"):
        raise ValueError(f"device {requested!r} takes no index: use {kind!r}")
    return kind, None if index is None else int(index)


def device_count(kind: str) -> int:
    """Number of usable devices of `kind` ("cuda", "mps", "cpu"); 0 when the kind is unavailable."""
    if kind == "cuda":
        return 0 if _cuda_unavailable_reason() else torch.cuda.device_count()
    if kind == "mps":
        return 0 if _mps_unavailable_reason() else 1
    if kind == "cpu":
        return 1
    raise ValueError(f"unknown device kind {kind!r}: use one of {KINDS}")


def select_device(requested: str = "auto") -> torch.device:
    """The torch.device for a user's request; raises DeviceUnavailableError saying why when it is absent."""
    kind, index = _parse_request(requested)
    if kind == "auto":
        if _cuda_unavailable_reason() is None:
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_unavailable_reason() is None:
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        reason = _mps_unavailable_reason()
        if reason:
            raise DeviceUnavailableError(f"device {requested!r} unavailable: {reason}")
        if index not in (None, 0):
            raise DeviceUnavailableError(f"device {requested!r} unavailable: a Mac has a single MPS device (mps:0)")
        return torch.device("mps")
    reason = _cuda_unavailable_reason()
    if reason:
        raise DeviceUnavailableError(f"device {requested!r} unavailable: {reason}")
    count = torch.cuda.device_count()
    if index is not None and index >= count:
        raise DeviceUnavailableError(
            f"device {requested!r} unavailable: index {index} out of range, {count} CUDA device(s) visible "
            f"(cuda:0..cuda:{count - 1}; CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return torch.device("cuda", torch.cuda.current_device() if index is None else index)


# ----------------------------------------------------------------------------------------------------------
# Memory backends: each device's own terms, behind one small interface (tests pass a fake)
# ----------------------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------------------
# The policy
# ----------------------------------------------------------------------------------------------------------
DECISIONS = (
    "device", "amp_dtype", "grad_scaler", "pin_memory", "non_blocking", "num_workers", "worker_floor",
    "prefetch_stream",
    "dist_backend", "cudnn_benchmark", "compile_allowed", "channels_last", "cache_release_every",
    "downcast_float64", "mps_fallback", "memory",
)


@dataclass(frozen=True)
class DevicePolicy:
    """Every device decision for one run; `reasons[name]` says why in one line."""

    kind: str
    device: torch.device
    amp_dtype: Optional[torch.dtype]
    grad_scaler: bool
    pin_memory: bool
    non_blocking: bool
    num_workers: int
    prefetch_stream: bool
    dist_backend: Optional[str]
    cudnn_benchmark: bool
    compile_allowed: bool
    channels_last: bool
    cache_release_every: int
    reasons: Mapping[str, str]
    downcast_float64: bool = False
    mps_fallback: bool = False
    worker_floor: int = 0
    warnings: Tuple[str, ...] = ()
    memory: MemoryBackend = field(default_factory=MemoryBackend, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"policy kind {self.kind!r} is not one of {KINDS}")
        missing = [name for name in DECISIONS if not str(self.reasons.get(name, "")).strip()]
        if missing:
            raise ValueError(f"device policy decisions without a reason: {missing}")

    def __repr__(self) -> str:
        amp = "fp32" if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")
        return f"DevicePolicy({self.kind} rules, tensors on {self.device}, {amp})"

    @property
    def simulated(self) -> bool:
        """True when the rules of `kind` apply to tensors living on another device type (tests)."""
        return self.kind != self.device.type

    def describe(self) -> List[str]:
        """One "decision = value  (reason)" line per decision, for the start-of-run log."""
        values = {name: getattr(self, name) for name in DECISIONS if name != "memory"}
        values["device"] = f"{self.device} (rules: {self.kind}{', simulated' if self.simulated else ''})"
        values["amp_dtype"] = "fp32 (AMP off)" if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")
        values["memory"] = self.memory.name
        return [f"{name} = {values[name]}  ({self.reasons[name]})" for name in DECISIONS]

    def log_decisions(self) -> None:
        """Log describe() once at INFO, each line prefixed so a user can grep the run log."""
        for line in self.describe():
            logger.info(f"device policy: {line}")

    # ---- precision -------------------------------------------------------------------------------------
    def autocast(self) -> ContextManager:
        """Autocast on the tensors' device with the policy's dtype; disabled (fp32) when amp_dtype is None."""
        if self.amp_dtype is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def make_grad_scaler(self) -> "torch.amp.GradScaler":
        """A real GradScaler when the policy scales, else a disabled one (same methods, pass-through)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.grad_scaler)

    # ---- placement -------------------------------------------------------------------------------------
    def to(self, obj: Any) -> Any:
        """Move a tensor, module, or list/tuple/dict of them to the device (non_blocking per policy)."""
        if isinstance(obj, torch.Tensor):
            if self.downcast_float64 and obj.dtype == torch.float64:
                return obj.to(self.device, dtype=torch.float32, non_blocking=self.non_blocking)
            return obj.to(self.device, non_blocking=self.non_blocking)
        if isinstance(obj, torch.nn.Module):
            if self.downcast_float64:
                obj = obj.to(dtype=torch.float32) if _has_float64(obj) else obj
            return obj.to(self.device)
        if isinstance(obj, (list, tuple)):
            moved = [self.to(item) for item in obj]
            return type(obj)(moved) if not hasattr(obj, "_fields") else type(obj)(*moved)
        if isinstance(obj, dict):
            return {key: self.to(value) for key, value in obj.items()}
        return obj

    def loader_kwargs(self, requested_workers: int) -> Dict[str, Any]:
        """DataLoader settings: workers between the policy's floor and cap, pinning per device, kept alive."""
        workers = max(0, min(max(int(requested_workers), self.worker_floor), self.num_workers))
        return {"num_workers": workers, "pin_memory": self.pin_memory, "persistent_workers": workers > 0}

    def set_current_device(self) -> None:
        """Make the policy's GPU the current CUDA device (each DDP rank owns one); no-op elsewhere."""
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)

    def configure_backends(self) -> None:
        """Apply the backend flags the policy decided (cuDNN autotuning, never after a deterministic seeding)."""
        if self.kind == "cuda":
            torch.backends.cudnn.benchmark = self.cudnn_benchmark and not torch.backends.cudnn.deterministic

    def check_world_size(self, world_size: int) -> None:
        """Raise DeviceUnavailableError when `world_size` processes cannot train under this policy."""
        if world_size > 1 and self.dist_backend is None:
            raise DeviceUnavailableError(
                f"{world_size} training processes requested on {self.kind}: {self.reasons['dist_backend']}")

    # ---- memory ----------------------------------------------------------------------------------------
    def synchronize(self) -> None:
        self.memory.synchronize()

    def memory_allocated(self) -> int:
        return int(self.memory.allocated())

    def peak_memory(self) -> int:
        return int(self.memory.peak())

    def reset_peak_memory(self) -> None:
        self.memory.reset_peak()

    def memory_limit(self) -> int:
        return int(self.memory.limit())

    def release_cache(self) -> None:
        self.memory.release_cache()

    def should_release_cache(self, iteration: int) -> bool:
        """True on the iterations (1-based count) where the policy's cadence says to release the cache."""
        return self.cache_release_every > 0 and iteration > 0 and iteration % self.cache_release_every == 0

    def memory_line(self) -> str:
        """Memory figures for the iteration log line, in the device's own terms."""
        host_gb = psutil.virtual_memory().used / GIB
        if self.kind == "cuda":
            return f"gpu mem: {self.peak_memory() / MIB:.0f}Mb, mem: {host_gb:.1f}Gb"
        if self.kind == "mps":
            # injected backends need only the contract's methods; driver memory is an extra of the MPS one
            driver = getattr(self.memory, "driver_allocated", self.memory.allocated)()
            return (f"mps mem: {self.memory_allocated() / MIB:.0f}Mb, driver: {driver / MIB:.0f}Mb, "
                    f"peak~{self.peak_memory() / MIB:.0f}Mb of {self.memory_limit() / MIB:.0f}Mb, "
                    f"mem: {host_gb:.1f}Gb")
        return (f"rss: {self.memory_allocated() / GIB:.2f}Gb, peak~{self.peak_memory() / GIB:.2f}Gb, "
                f"ram free: {self.memory_limit() / GIB:.1f}Gb")

    def is_oom(self, exc: BaseException) -> bool:
        """True for out-of-memory errors of any device (CUDA, MPS, CPU), whatever this policy's kind."""
        seen = 0
        while exc is not None and seen < 8:
            if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
                return True
            if isinstance(exc, RuntimeError) and any(text in str(exc) for text in OOM_MESSAGES):
                return True
            exc = exc.__cause__ or exc.__context__
            seen += 1
        return False

    # ---- reproducibility -------------------------------------------------------------------------------
    def rng_state(self) -> Optional[Dict[str, Any]]:
        """The device generator's state for exact resume ({"type", "state"}); None on CPU (torch's state covers it)."""
        if self.device.type == "cuda":
            return {"type": "cuda", "state": torch.cuda.get_rng_state(self.device)}
        if self.device.type == "mps":
            return {"type": "mps", "state": torch.mps.get_rng_state()}
        return None

    def set_rng_state(self, state: Optional[Mapping[str, Any]]) -> None:
        """Restore rng_state(); a state saved on another device type is skipped with a warning."""
        if state is None:
            return
        if state.get("type") != self.device.type:
            logger.warning(f"device RNG state saved on {state.get('type')} not restored on {self.device.type}: "
                           "random draws on the device will differ from the original run")
            return
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(state["state"], self.device)
        else:
            torch.mps.set_rng_state(state["state"])

    def seed_everything(self, seed: int, deterministic: bool = False) -> None:
        """Seed Python, NumPy, torch and the device; `deterministic` also pins cuDNN to repeatable kernels."""
        seed = int(seed)  # Exp.merge may hand over the string "42"
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        # the CPU generator directly: torch.manual_seed would also reach into torch.cuda on machines without it
        torch.random.default_generator.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        elif self.device.type == "mps":
            torch.mps.manual_seed(seed)
        if deterministic:
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False


class CopyStream:
    """A side CUDA stream for host-to-device copies, and the hand-over to the compute stream."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def context(self) -> ContextManager:
        """Work queued inside runs on the side stream."""
        return torch.cuda.stream(self.stream)

    def hand_over(self, *tensors: Optional[torch.Tensor]) -> None:
        """Make the compute stream wait for the copies and keep their memory alive until it is done."""
        compute = torch.cuda.current_stream(self.device)
        compute.wait_stream(self.stream)
        for tensor in tensors:
            if isinstance(tensor, torch.Tensor):
                tensor.record_stream(compute)


def make_copy_stream(policy: DevicePolicy) -> Optional[CopyStream]:
    """A CopyStream when the policy prefetches on a side stream and its tensors live on CUDA, else None."""
    if policy.prefetch_stream and policy.device.type == "cuda":
        return CopyStream(policy.device)
    return None


def _has_float64(module: torch.nn.Module) -> bool:
    tensors = list(module.parameters()) + list(module.buffers())
    return any(tensor.dtype == torch.float64 for tensor in tensors)


# ----------------------------------------------------------------------------------------------------------
# Decisions, one small function per topic; each returns values and their reasons
# ----------------------------------------------------------------------------------------------------------
@dataclass
class _Decisions:
    """Mutable scratchpad while a policy is being decided."""

    values: Dict[str, Any] = field(default_factory=dict)
    reasons: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)

    def set(self, name: str, value: Any, reason: str) -> None:
        self.values[name] = value
        self.reasons[name] = reason

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _decide_amp(out: _Decisions, kind: str, device: torch.device, fp16: bool, bf16: Optional[bool],
                probe: ProbeFn) -> None:
    if kind == "cuda":
        _decide_amp_cuda(out, device, fp16, bf16)
    elif kind == "mps":
        _decide_amp_mps(out, fp16, bf16, probe)
    else:
        _decide_amp_cpu(out, fp16, bf16)


def _fp32(out: _Decisions, reason: str) -> None:
    out.set("amp_dtype", None, reason)
    out.set("grad_scaler", False, "no scaler without fp16 autocast")


def _decide_amp_cuda(out: _Decisions, device: torch.device, fp16: bool, bf16: Optional[bool]) -> None:
    if bf16:
        simulated = device.type != "cuda"
        if simulated or torch.cuda.is_bf16_supported():
            out.set("amp_dtype", torch.bfloat16, "bf16 autocast asked and " +
                    ("assumed supported (simulated, no GPU to ask)" if simulated else "supported by this GPU"))
            out.set("grad_scaler", False, "bf16 has fp32's exponent range: gradients do not underflow, no scaler")
            return
        out.warn("bf16 asked but this GPU does not support it (pre-Ampere); training in fp16 with a GradScaler")
        fp16 = True
    if fp16:
        out.set("amp_dtype", torch.float16, "--fp16: CUDA fp16 autocast (tensor cores)")
        out.set("grad_scaler", True, "fp16 gradients underflow without loss scaling")
        return
    _fp32(out, "AMP not asked (--fp16 / bf16 off)")


def _decide_amp_mps(out: _Decisions, fp16: bool, bf16: Optional[bool], probe: ProbeFn) -> None:
    if not (fp16 or bf16):
        _fp32(out, "AMP off by default on MPS: fp16 BatchNorm under MPS autocast hard-aborted in torch 2.7; "
                   "--fp16 runs a probe first")
        return
    dtype = torch.bfloat16 if bf16 else torch.float16
    name = "bf16" if bf16 else "fp16"
    needed = (2, 6) if bf16 else (2, 8)
    if _torch_version() < needed:
        why = ("MPS bf16 autocast needs torch 2.6+" if bf16 else
               "GradScaler('mps') is broken before torch 2.8 (unscale uses float64, which MPS lacks)")
        out.warn(f"{name} asked on MPS but torch {torch.__version__} is too old: {why}; training in fp32")
        _fp32(out, f"{name} refused: {why}")
        return
    ok, probe_reason = probe(dtype)
    if not ok:
        out.warn(f"{name} asked on MPS but the AMP probe failed ({probe_reason}); training in fp32")
        _fp32(out, f"{name} refused: AMP probe failed in a child process: {probe_reason}")
        return
    out.set("amp_dtype", dtype, f"{name} asked and the MPS autocast probe passed (conv+BN+loss fwd/bwd)")
    if bf16:
        out.set("grad_scaler", False, "bf16 has fp32's exponent range: no scaler")
    else:
        out.set("grad_scaler", True, "fp16 gradients underflow without loss scaling; the probe checked unscale")


def _decide_amp_cpu(out: _Decisions, fp16: bool, bf16: Optional[bool]) -> None:
    if bf16:
        out.set("amp_dtype", torch.bfloat16, "bf16 autocast explicitly asked on CPU")
        out.set("grad_scaler", False, "bf16 has fp32's exponent range: no scaler")
        return
    if fp16:
        out.warn("--fp16 ignored on CPU: CPU fp16 kernels are slow or missing; pass bf16 for CPU autocast")
        _fp32(out, "fp16 refused on CPU (slow or missing kernels); bf16 only when asked")
        return
    _fp32(out, "AMP off by default on CPU; bf16 only when explicitly asked")


def _decide_loader(out: _Decisions, kind: str, num_workers: Optional[int], world_size: int) -> None:
    spawn_note = "macOS starts workers with spawn (dataset must pickle)" if sys.platform == "darwin" else ""
    if kind == "cuda":
        out.set("pin_memory", True, "pinned host memory makes the H2D copy asynchronous")
        out.set("non_blocking", True, "copies from pinned memory overlap compute on CUDA")
        cpus = max(1, (os.cpu_count() or 1) // max(1, world_size))
        cap = cpus if num_workers is None else num_workers
        out.set("num_workers", cap, "CUDA: the requested workers (capped at this process's share of CPUs) feed "
                                    "the GPU")
        floor = min(cap, max(0, cpus - 2), CUDA_WORKER_FLOOR) if num_workers is None else 0
        out.set("worker_floor", floor,
                "measured on an H100 host: mosaic+mixup at 640 gives ~33 img/s per worker, so upstream's 4 workers "
                "starve a ~1000 img/s yolox-s step; at least this many unless workers are set explicitly")
        out.set("prefetch_stream", True, "a side CUDA stream overlaps the next batch's copy with compute")
        return
    out.set("pin_memory", False, f"pinning is a CUDA feature; on {kind} it does nothing"
                                 + (" (torch warns and ignores it on MPS)" if kind == "mps" else ""))
    out.set("non_blocking", False, f"no asynchronous host-to-device copy on {kind}")
    out.set("prefetch_stream", False, "side-stream prefetch needs CUDA streams; batches are moved in place")
    out.set("worker_floor", 0, f"the exp's data_num_workers is used as asked, up to the {kind} cap")
    if num_workers is not None:
        out.set("num_workers", num_workers, f"worker cap set explicitly ({num_workers})")
    elif kind == "mps":
        out.set("num_workers", MPS_WORKER_CAP,
                f"capped at {MPS_WORKER_CAP} and kept persistent: augmentation stays off the training thread while "
                f"each worker start costs seconds and a copy of the dataset{'; ' + spawn_note if spawn_note else ''}")
    else:
        out.set("num_workers", CPU_WORKER_CAP,
                f"capped at {CPU_WORKER_CAP}: workers compete with torch's compute threads for the same cores"
                f"{'; ' + spawn_note if spawn_note else ''}")


def _decide_distributed(out: _Decisions, kind: str) -> None:
    if kind == "cuda":
        backend = "nccl" if torch.distributed.is_available() and torch.distributed.is_nccl_available() else "gloo"
        out.set("dist_backend", backend, "NCCL is the GPU collective backend" if backend == "nccl"
                else "this torch build has no NCCL; gloo instead")
    elif kind == "mps":
        out.set("dist_backend", None, "multi-process training refused on MPS: a Mac has one MPS device and no NCCL, "
                                      "so extra processes share one GPU; run one process (-d 1), or --device cpu "
                                      "for gloo")
    else:
        out.set("dist_backend", "gloo", "gloo is the CPU collective backend")


def _decide_kernels(out: _Decisions, kind: str, compile: bool, channels_last: Optional[bool],
                    cudnn_benchmark: Optional[bool], deterministic: bool) -> None:
    if kind == "cuda" and deterministic:
        out.set("cudnn_benchmark", False, "deterministic run: autotuning may pick different kernels each run")
    elif kind == "cuda" and cudnn_benchmark is not None:
        out.set("cudnn_benchmark", cudnn_benchmark, "set explicitly")
    elif kind == "cuda":
        out.set("cudnn_benchmark", False,
                "off: autotuning every new multi-scale input size cost most of the run (measured on one H100, "
                "yolox-s b64 trainer 100 img/s with it, 368 img/s without)")
    else:
        out.set("cudnn_benchmark", False, f"cuDNN is not used on {kind}")

    if kind == "cuda":
        out.set("compile_allowed", True, "Inductor/Triton compiles CUDA training graphs")
    elif compile:
        out.set("compile_allowed", True, f"torch.compile explicitly asked on {kind}")
        if kind == "mps":
            out.warn("torch.compile on MPS: Inductor's Metal backend is young; compiled conv training was "
                     "measured 4-5x slower than eager in 2026")
    elif kind == "mps":
        out.set("compile_allowed", False, "Inductor's Metal backend is a prototype; compiled conv training was "
                                          "reported 4-5x slower than eager")
    else:
        out.set("compile_allowed", False, "compile time outweighs the gain for CPU runs unless asked")

    if kind == "mps":
        if channels_last:
            out.warn("channels_last refused on MPS: convolution_backward was measured ~30x slower in that layout")
        out.set("channels_last", False, "never for MPS training: convolution_backward ~30x slower in channels_last")
    elif channels_last is not None:
        out.set("channels_last", bool(channels_last), "set explicitly")
    elif kind == "cuda":
        out.set("channels_last", True, "measured on one H100 (fp16 model step): yolox-s b64 530 -> 1004 img/s, "
                                       "yolox-m b16 213 -> 308 img/s against the contiguous layout")
    else:
        out.set("channels_last", True, "measured on a 2-core CPU (yolox-nano b8 at 416, 2 threads, one run): "
                                       "0.763 -> 0.573 and 0.739 -> 0.620 s per training step")


def _decide_cache(out: _Decisions, kind: str, every: Optional[int]) -> None:
    if every is not None:
        out.set("cache_release_every", max(0, int(every)), "set explicitly (0 = never)")
    elif kind == "mps":
        out.set("cache_release_every", MPS_CACHE_RELEASE_EVERY,
                f"the MPS cache keeps blocks for every input shape seen and grows across batches; multi-scale "
                f"changes the shape every {MPS_CACHE_RELEASE_EVERY} iterations, so release on that cadence")
    elif kind == "cuda":
        out.set("cache_release_every", 0, "never: the caching allocator reuses blocks; emptying forces re-allocation")
    else:
        out.set("cache_release_every", 0, "never: the CPU allocator keeps no device cache")
    if kind == "mps":
        out.set("downcast_float64", True, "MPS has no float64 tensors: float64 inputs become float32 on the way")
    else:
        out.set("downcast_float64", False, f"{kind} supports float64")


def _decide_fallback(out: _Decisions, kind: str) -> None:
    if kind != "mps":
        out.set("mps_fallback", False, f"not applicable on {kind}")
    elif os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK") == "1":
        out.set("mps_fallback", True, "PYTORCH_ENABLE_MPS_FALLBACK=1: ops without MPS kernels run on the CPU (slower)")
    else:
        out.set("mps_fallback", False, "PYTORCH_ENABLE_MPS_FALLBACK unset: an op without an MPS kernel raises "
                                       "NotImplementedError (set it before importing torch: setup_mps_environment)")


def build_policy(requested: str = "auto", *, fp16: bool = False, bf16: Optional[bool] = None, local_rank: int = 0,
                 world_size: int = 1, tensors_on: Optional[str] = None, memory: Optional[MemoryBackend] = None,
                 cache_release_every: Optional[int] = None, compile: bool = False,
                 channels_last: Optional[bool] = None, cudnn_benchmark: Optional[bool] = None,
                 num_workers: Optional[int] = None, amp_probe: Optional[ProbeFn] = None,
                 deterministic: bool = False, log: bool = False) -> DevicePolicy:
    """Decide everything device-specific for one process.

    `tensors_on` builds the rules of `requested` with tensors on another device (how MPS is tested on a CPU);
    `memory` replaces the memory backend; `amp_probe(dtype) -> (ok, reason)` replaces the MPS AMP probe;
    `deterministic` (a seeded run) turns cuDNN autotuning off.
    Warnings (a refused fp16, ...) are logged once here and kept in `policy.warnings`.
    """
    kind, device = _resolve(requested, local_rank, world_size, tensors_on)
    out = _Decisions()
    out.set("device", device, _device_reason(requested, kind, device, world_size))
    _decide_amp(out, kind, device, fp16, bf16, amp_probe or probe_mps_amp)
    _decide_loader(out, kind, num_workers, world_size)
    _decide_distributed(out, kind)
    _decide_kernels(out, kind, compile, channels_last, cudnn_benchmark, deterministic)
    _decide_cache(out, kind, cache_release_every)
    _decide_fallback(out, kind)
    backend = memory if memory is not None else memory_backend_for(device)
    out.set("memory", backend, _memory_reason(kind, device, memory is not None))
    out.values.pop("device")
    out.values.pop("memory")
    policy = DevicePolicy(kind=kind, device=device, reasons=dict(out.reasons), warnings=tuple(out.warnings),
                          memory=backend, **out.values)
    policy.check_world_size(world_size)
    for message in policy.warnings:
        logger.warning(message)
    if log:
        policy.log_decisions()
    return policy


def _resolve(requested: str, local_rank: int, world_size: int, tensors_on: Optional[str]) -> Tuple[str, torch.device]:
    """(rules kind, tensor device); the CUDA index follows the local rank when several processes train."""
    kind, index = _parse_request(requested)
    if tensors_on is not None:
        if kind == "auto":
            kind = select_device("auto").type
        return kind, select_device(tensors_on)
    if kind == "cuda" and world_size > 1:
        return kind, select_device(f"cuda:{local_rank}")
    device = select_device(requested)
    return device.type, device


def _device_reason(requested: str, kind: str, device: torch.device, world_size: int) -> str:
    if kind != device.type:
        return f"rules of {kind} simulated with tensors on {device.type} (tests)"
    if (requested or "auto").strip().lower() == "auto":
        return "auto: first available of cuda, mps, cpu"
    if kind == "cuda" and world_size > 1:
        return f"one GPU per process: local rank -> {device}"
    return f"asked for {requested!r}"


def _memory_reason(kind: str, device: torch.device, injected: bool) -> str:
    if injected:
        return "memory backend injected by the caller"
    if device.type == "cuda":
        return "torch.cuda allocator counters (allocated, peak, total)"
    if device.type == "mps":
        return (f"torch.mps current/driver memory vs recommended_max x high watermark "
                f"{mps_high_watermark_ratio():g}; peak sampled (no counter)")
    return "process RSS (psutil) vs available RAM; peak sampled" + (
        f" (tensors of this {kind} policy live on the CPU)" if kind != "cpu" else "")


# ----------------------------------------------------------------------------------------------------------
# MPS autocast probe (in a child process: the known failure is a hard abort that Python cannot catch)
# ----------------------------------------------------------------------------------------------------------
PROBE_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    device, dtype = torch.device(sys.argv[1]), getattr(torch, sys.argv[2])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.SiLU(),
                                torch.nn.Conv2d(8, 4, 1)).to(device).train()
    images = torch.randn(2, 3, 32, 32, device=device)
    target = torch.rand(2, 4, 32, 32, device=device)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def grads(amp):
        model.zero_grad()
        with torch.autocast(device_type=device.type, dtype=dtype, enabled=amp):
            loss = loss_fn(model(images), target)
        scaler = torch.amp.GradScaler(device.type, enabled=amp and dtype == torch.float16)
        scaler.scale(loss).backward()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler.unscale_(optimizer)
        return torch.cat([p.grad.flatten().float() for p in model.parameters()]).cpu(), float(loss)

    ref, ref_loss = grads(False)
    amp, amp_loss = grads(True)
    if not torch.isfinite(amp).all():
        sys.exit("non-finite gradients under autocast")
    if amp.abs().sum() == 0:
        sys.exit("gradients silently zero under autocast")
    error = float((amp - ref).norm() / ref.norm().clamp_min(1e-12))
    if error > 0.1:
        sys.exit(f"autocast gradients off by {error:.3f} relative to fp32")
    print(f"PROBE-OK loss {ref_loss:.4f}/{amp_loss:.4f} grad rel error {error:.4f}")
""")


def probe_mps_amp(dtype: torch.dtype = torch.float16, timeout_s: float = 120, device: str = "mps",
                  script: Optional[str] = None) -> Tuple[bool, str]:
    """Run conv+BN+loss forward/backward under autocast in a child process; (ok, one-line reason).

    `device` and `script` are overridable so the machinery itself can be tested on CPU.
    """
    dtype_name = str(dtype).replace("torch.", "")
    command = [sys.executable, "-c", script or PROBE_SCRIPT, device, dtype_name]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, f"{dtype_name} probe on {device} did not finish within {timeout_s:g} s"
    if done.returncode == 0:
        last = done.stdout.strip().splitlines()
        return True, f"{dtype_name} autocast on {device}: " + (last[-1] if last else "ok")
    tail = _last_line(done.stderr) or _last_line(done.stdout) or "no output"
    if done.returncode < 0:
        name = _signal_name(-done.returncode)
        return False, f"{dtype_name} probe on {device} was killed by {name} (hard abort): {tail}"
    return False, f"{dtype_name} probe on {device} failed (exit {done.returncode}): {tail}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
