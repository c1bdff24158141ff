"""build_policy: the decisions, one small function per topic, each setting values and their reasons."""
from __future__ import annotations

import importlib.util
import os
import sys
from typing import Optional, Tuple

import torch
from loguru import logger

from yolox.utils.device.decision_record import DOCS, _Decisions
from yolox.utils.device.memory import MemoryBackend, memory_backend_for, mps_high_watermark_ratio
from yolox.utils.device.optimizer_decisions import decide_fused_optimizer, decide_late_guard
from yolox.utils.device.policy import DevicePolicy
from yolox.utils.device.probe import ProbeFn, probe_mps_amp
from yolox.utils.device.selection import _parse_request, _torch_version, select_device
from yolox.utils.device.selfcheck_decisions import SelfCheck, decide_self_check

# The multi-scale size changes every 10 iterations (Exp.random_size); see the cache decision below.
MPS_CACHE_RELEASE_EVERY = 10
CPU_WORKER_CAP = 2
CUDA_WORKER_FLOOR = 14
MPS_WORKER_CAP = 4
# below this --time budget the batch augmentation is not compiled: on one H100 a crater run spent ~35 s before its
# first step compiling it (docs/devices.md#compile_augment), against a gain of a sixth of the step time
COMPILE_AUGMENT_MIN_BUDGET_S = 600.0


def _decide_amp(out: _Decisions, kind: str, device: torch.device, fp16: Optional[bool], bf16: Optional[bool],
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


def _decide_amp_cuda(out: _Decisions, device: torch.device, fp16: Optional[bool], bf16: Optional[bool]) -> None:
    if bf16:
        simulated = device.type != "cuda"
        if simulated or torch.cuda.is_bf16_supported():
            out.set("amp_dtype", torch.bfloat16, "bf16 autocast asked and " +
                    ("assumed supported (simulated, no GPU to ask)" if simulated else "supported by this GPU"))
            out.set("grad_scaler", False, "bf16 has fp32's exponent range: gradients do not underflow, no scaler")
            return
        out.warn("bf16 asked but this GPU does not support it (pre-Ampere); training in fp16 with a GradScaler")
        fp16 = True
    if fp16 or fp16 is None:
        out.set("amp_dtype", torch.float16, "--fp16: CUDA fp16 autocast (tensor cores)" if fp16 else
                "CUDA default when the caller leaves fp16 open: fp16 autocast on tensor cores (--no-fp16 for fp32)")
        out.set("grad_scaler", True, "fp16 gradients underflow without loss scaling")
        return
    _fp32(out, "AMP not asked (--fp16 / bf16 off)")


def _decide_amp_mps(out: _Decisions, fp16: Optional[bool], bf16: Optional[bool], probe: ProbeFn) -> None:
    if not (fp16 or bf16):
        _fp32(out, "AMP off by default on MPS: fp16 BatchNorm under MPS autocast hard-aborted in torch 2.7; "
                   f"--fp16 runs a probe first ({DOCS}amp-mixed-precision)")
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


def _decide_amp_cpu(out: _Decisions, fp16: Optional[bool], bf16: Optional[bool]) -> None:
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
                "a few mosaic+mixup workers cannot feed a GPU step; at least this many unless workers are set "
                f"explicitly ({DOCS}loader-workers-and-pinned-memory)")
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


def _decide_augment(out: _Decisions, kind: str) -> None:
    if kind == "cuda":
        out.set("batch_augment", True, "mosaic, affine and mixup as batch ops on the GPU train faster than in the "
                                       f"loader workers ({DOCS}batch_augment)")
    elif kind == "mps":
        out.set("batch_augment", False, "not yet measured on a Mac: the per-image pipeline in the workers is the "
                                        "tested path (exp.device_augment = True tries the batch ops on MPS)")
    else:
        out.set("batch_augment", False, "on the CPU the batch ops take the cores training needs; the per-image "
                                        f"pipeline in the workers is faster ({DOCS}batch_augment)")


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


def _decide_kernels(out: _Decisions, kind: str, channels_last: Optional[bool],
                    cudnn_benchmark: Optional[bool], deterministic: bool) -> None:
    if kind == "cuda" and deterministic:
        out.set("cudnn_benchmark", False, "deterministic run: autotuning may pick different kernels each run")
    elif kind == "cuda" and cudnn_benchmark is not None:
        out.set("cudnn_benchmark", cudnn_benchmark, "set explicitly")
    elif kind == "cuda":
        out.set("cudnn_benchmark", False,
                f"off: autotuning every new multi-scale input size costs more than it saves ({DOCS}cudnn_benchmark)")
    else:
        out.set("cudnn_benchmark", False, f"cuDNN is not used on {kind}")

    if kind == "mps":
        if channels_last:
            out.warn(f"channels_last refused on MPS: convolution_backward is reported far slower in that layout "
                     f"({DOCS}channels_last)")
        out.set("channels_last", False, "never for MPS training: convolution_backward is reported far slower in "
                                        f"channels_last ({DOCS}channels_last)")
    elif channels_last is not None:
        out.set("channels_last", bool(channels_last), "set explicitly")
    elif kind == "cuda":
        out.set("channels_last", True, "measured on one H100: a faster fp16 model step than the contiguous layout "
                                       f"({DOCS}channels_last)")
    else:
        out.set("channels_last", True, "measured on a 2-core CPU: a faster training step than the contiguous "
                                       f"layout ({DOCS}channels_last)")


def _decide_fused_bn_act(out: _Decisions, kind: str, fused_bn_act: Optional[bool]) -> None:
    if kind != "cpu":
        out.set("fused_bn_act", False, f"the fused BatchNorm+SiLU kernel is a CPU kernel; {kind} keeps its own")
        if fused_bn_act:
            out.warn(f"fused BatchNorm+SiLU refused on {kind}: the kernel runs on the CPU only")
    elif not out.values["channels_last"]:
        out.set("fused_bn_act", False, "the fused BatchNorm+SiLU kernel reads channels_last tensors only")
    elif out.values["compile_model"]:
        out.set("fused_bn_act", False, "the model is compiled: Inductor fuses BatchNorm and SiLU itself, and the "
                                       "C++ kernel would break its graph")
        if fused_bn_act:
            out.warn("fused BatchNorm+SiLU refused: the model is compiled, and Inductor fuses them itself")
    elif fused_bn_act is not None:
        out.set("fused_bn_act", bool(fused_bn_act), "set explicitly")
    elif sys.platform != "linux":
        out.set("fused_bn_act", False, f"measured on Linux only; on {sys.platform} nn.BatchNorm2d + nn.SiLU are "
                                       "used until it is measured there (pass fused_bn_act=True to try)")
    else:
        out.set("fused_bn_act", True, "measured on a 2-core CPU: a faster training step; built with torch's C++ "
                                      f"extension loader on first use ({DOCS}fused_bn_act)")


def _decide_compile_model(out: _Decisions, kind: str, compile_model: Optional[bool], triton_found: bool) -> None:
    if compile_model and kind == "cuda" and not triton_found:
        out.set("compile_model", False, "refused: Triton is not installed, so Inductor cannot build CUDA kernels")
        out.warn("--compile refused: Triton is not installed, so the compiled model would fail at its first step "
                 "(pip install triton, or train without --compile)")
    elif compile_model:
        out.set("compile_model", True, f"torch.compile of the training model asked on {kind}")
        if kind == "mps":
            out.warn("torch.compile on MPS: Inductor's Metal backend is young; compiled conv training was "
                     f"reported slower than eager ({DOCS}compile_model)")
    elif compile_model is not None:
        out.set("compile_model", False, "set explicitly")
    elif kind == "mps":
        out.set("compile_model", False, "Inductor's Metal backend is a prototype; compiled conv training was "
                                        f"reported slower than eager ({DOCS}compile_model)")
    elif kind == "cuda":
        out.set("compile_model", False, "off unless asked (--compile): no faster than eager, less memory, a long "
                                        f"compile at each multi-scale size ({DOCS}compile_model)")
    else:
        out.set("compile_model", False, "compile time outweighs the gain for CPU runs unless asked")


def _decide_compile_augment(out: _Decisions, kind: str, device: torch.device, compile_augment: Optional[bool],
                            triton_found: bool, time_budget_s: Optional[float]) -> None:
    if compile_augment is not None:
        out.set("compile_augment", bool(compile_augment), "set explicitly")
    elif kind == "cuda" and device.type != "cuda":
        out.set("compile_augment", False, f"CUDA rules with tensors on {device.type} (a test): Inductor would "
                                          f"compile for {device.type}")
    elif kind != "cuda":
        out.set("compile_augment", False, f"not measured on {kind}: the eager batch augmentation is the tested path "
                                          "(and the per-image pipeline the default)")
    elif not triton_found:
        out.set("compile_augment", False, "Triton is not installed, so Inductor cannot compile for CUDA")
    elif time_budget_s is not None and time_budget_s < COMPILE_AUGMENT_MIN_BUDGET_S:
        out.set("compile_augment", False, f"a --time budget under {COMPILE_AUGMENT_MIN_BUDGET_S / 60:.0f} min: the "
                                          "compile at the start costs more of it than the faster augmentation saves "
                                          f"({DOCS}compile_augment)")
    else:
        out.set("compile_augment", True, "compiled, the batch augmentation's image half runs as a few fused CUDA "
                                         "kernels instead of hundreds of elementwise ones (one compile per input "
                                         f"size) ({DOCS}compile_augment)")


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


def build_policy(requested: str = "auto", *, fp16: Optional[bool] = False, bf16: Optional[bool] = None, local_rank: int = 0,
                 world_size: int = 1, tensors_on: Optional[str] = None, memory: Optional[MemoryBackend] = None,
                 cache_release_every: Optional[int] = None, compile_model: Optional[bool] = None,
                 channels_last: Optional[bool] = None, cudnn_benchmark: Optional[bool] = None,
                 fused_bn_act: Optional[bool] = None, fused_optimizer: Optional[bool] = None,
                 compile_augment: Optional[bool] = None,
                 num_workers: Optional[int] = None, amp_probe: Optional[ProbeFn] = None,
                 deterministic: bool = False, log: bool = False, self_check: SelfCheck = None,
                 time_budget_s: Optional[float] = None) -> DevicePolicy:
    """Decide everything device-specific for one process.

    `tensors_on` builds the rules of `requested` with tensors on another device (how MPS is tested on a CPU);
    `memory` replaces the memory backend; `amp_probe(dtype) -> (ok, reason)` replaces the MPS AMP probe;
    `deterministic` (a seeded run) turns cuDNN autotuning off; `fp16=None` leaves AMP to the device default (on for CUDA).
    `time_budget_s` (a --time run) weighs start-up costs such as compilation against the run's length.
    Warnings (a refused fp16, ...) are logged once here and kept in `policy.warnings`.
    `self_check` is the device check's report (tools/check_device.py) whose failures become decisions: None reads
    this machine's cached report for the device kind (never for a simulated policy), False reads none.
    """
    kind, device = _resolve(requested, local_rank, world_size, tensors_on)
    triton_found = importlib.util.find_spec("triton") is not None
    out = _Decisions()
    out.set("device", device, _device_reason(requested, kind, device, world_size))
    _decide_amp(out, kind, device, fp16, bf16, amp_probe or probe_mps_amp)
    _decide_loader(out, kind, num_workers, world_size)
    _decide_augment(out, kind)
    _decide_distributed(out, kind)
    _decide_kernels(out, kind, channels_last, cudnn_benchmark, deterministic)
    _decide_compile_model(out, kind, compile_model, triton_found)
    _decide_fused_bn_act(out, kind, fused_bn_act)
    decide_fused_optimizer(out, kind, fused_optimizer)
    decide_late_guard(out, kind)
    _decide_compile_augment(out, kind, device, compile_augment, triton_found, time_budget_s)
    _decide_cache(out, kind, cache_release_every)
    decide_self_check(out, kind, self_check, simulated=device.type != kind,
                      explicit_cache_every=cache_release_every is not None)
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
