"""DevicePolicy: every device decision of one run, frozen, each with its reason, and the methods that apply them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Tuple

import psutil
import torch
from loguru import logger
from torch.profiler import ProfilerActivity

from yolox.utils.device.memory import GIB, MIB, MemoryBackend, is_out_of_memory
from yolox.utils.device.rng import device_rng_state, seed_everything, set_device_rng_state
from yolox.utils.device.selection import KINDS, DeviceUnavailableError


DECISIONS = (
    "device", "amp_dtype", "grad_scaler", "pin_memory", "non_blocking", "num_workers", "worker_floor",
    "prefetch_stream", "batch_augment",
    "dist_backend", "cudnn_benchmark", "compile_model", "channels_last", "fused_bn_act", "fused_optimizer",
    "late_guard", "compile_augment",
    "cache_release_every",
    "downcast_float64", "mps_fallback", "memory",
    "self_check", "assign_on_cpu", "loss_on_cpu", "postprocess_on_cpu",
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
    compile_model: bool
    channels_last: bool
    cache_release_every: int
    reasons: Mapping[str, str]
    downcast_float64: bool = False
    mps_fallback: bool = False
    worker_floor: int = 0
    batch_augment: bool = False
    fused_bn_act: bool = False
    fused_optimizer: bool = False
    late_guard: bool = False              # the non-finite verdict read a step late (the optimizer skips on device)
    compile_augment: bool = False
    self_check: Optional[str] = None      # the device check report the decisions below came from
    assign_on_cpu: bool = False           # parts the device check found disagreeing with the CPU
    loss_on_cpu: bool = False
    postprocess_on_cpu: bool = False
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
    def place_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module on the device, in the policy's memory layout and with its BatchNorm+SiLU kernel choice
        (training and evaluation alike: the fused kernel only ever runs in training). The model applies the
        choice itself (`model.use_fused_bn_act(enabled)`, as YOLOX has), so this layer imports no model code."""
        model = self.to(model)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if hasattr(model, "use_fused_bn_act"):
            model.use_fused_bn_act(self.fused_bn_act)
        return model

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

    def upload(self, tensor: torch.Tensor) -> torch.Tensor:
        """A small host tensor on the device without waiting for it: pinned first where the policy pins, since
        a copy from pageable memory makes the host wait for the stream (batch augmentation parameters)."""
        if self.pin_memory and self.device.type == "cuda" and tensor.device.type == "cpu":
            tensor = tensor.pin_memory()
        return self.to(tensor)

    def compile_function(self, fn: Callable) -> "CompiledOrEager":
        """`fn` compiled whole for fixed shapes; it runs eagerly from the first compile failure on (logged once)."""
        return CompiledOrEager(fn, torch.compile(fn, dynamic=False, fullgraph=True))

    def compile_model_parts(self, model: torch.nn.Module) -> int:
        """Where the policy compiles the model: compile in place (state_dict keys unchanged) the parts it declares
        (`model.compile_parts()`, else the whole model). Static shapes, one compile per input size, since dynamic
        shapes crashed Inductor (docs/devices.md#compile_model). Past torch's recompile limit further sizes run
        eagerly.
        Returns how many modules were compiled."""
        if not self.compile_model:
            return 0
        parts = model.compile_parts() if hasattr(model, "compile_parts") else [model]
        for part in parts:
            part.compile(dynamic=False)
        return len(parts)

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

    def profiler_activities(self) -> list:
        """torch.profiler activities for this device: the host always, CUDA kernels where tensors are on CUDA."""
        return [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])

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
        return is_out_of_memory(exc)

    # ---- reproducibility -------------------------------------------------------------------------------
    def rng_state(self) -> Optional[Dict[str, Any]]:
        """The device generator's state for exact resume ({"type", "state"}); None on CPU (torch's state covers it)."""
        return device_rng_state(self.device)

    def set_rng_state(self, state: Optional[Mapping[str, Any]]) -> None:
        """Restore rng_state(); a state saved on another device type is skipped with a warning."""
        set_device_rng_state(self.device, state)

    def seed_everything(self, seed: int, deterministic: bool = False) -> None:
        """Seed Python, NumPy, torch and the device; `deterministic` also pins cuDNN to repeatable kernels."""
        seed_everything(self.device, seed, deterministic)


def _has_float64(module: torch.nn.Module) -> bool:
    tensors = list(module.parameters()) + list(module.buffers())
    return any(tensor.dtype == torch.float64 for tensor in tensors)


class CompiledOrEager:
    """Calls the compiled function; on an error (no C compiler for Triton, a graph break) warns once and calls
    the eager one from then on, so a machine that cannot compile still trains. An error of the function itself
    is raised again by the eager call."""

    def __init__(self, eager: Callable, compiled: Callable) -> None:
        self.eager, self.compiled, self.fell_back = eager, compiled, False

    def __call__(self, *args: Any) -> Any:
        if not self.fell_back:
            try:
                return self.compiled(*args)
            except Exception as error:  # noqa: BLE001 - any compile failure falls back to the eager function
                if is_out_of_memory(error):
                    raise  # the caller's out-of-memory recovery decides; the compiled path stays
                self.fell_back = True
                first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                logger.warning(f"compiling {getattr(self.eager, '__name__', 'a function')} failed ({first_line}); "
                               "running it eagerly")
        return self.eager(*args)
