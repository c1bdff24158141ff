"""BatchNorm2d (training, batch statistics) fused with SiLU for float32 channels_last tensors on the CPU.

One autograd Function runs both in a C++ kernel (csrc/bn_silu_cpu.cpp, built on first use with torch's
cpp_extension). It keeps only the BatchNorm input for backward and recomputes the activation there, where
nn.BatchNorm2d + nn.SiLU(inplace=True) keep the input, a copy of the normalized tensor and pass over memory
about twice as often. Running statistics and num_batches_tracked are updated as nn.BatchNorm2d updates them.
"""
import functools
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import Optional, Tuple

import torch
from loguru import logger
from torch import nn
from torch.autograd.function import once_differentiable

__all__ = ["batch_norm_silu", "fusable", "kernel"]

_SOURCE = Path(__file__).resolve().parent / "csrc" / "bn_silu_cpu.cpp"
# Compiler flags per CPU capability torch reports: the kernel uses torch's vector types at that width.
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY=AVX512", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}


def _ninja_on_path() -> None:
    """cpp_extension runs `ninja`; the pip package's binary is not on PATH when the venv is not activated."""
    if shutil.which("ninja") is None:
        import ninja  # lazy: the ninja package is optional (a ninja on PATH does as well)

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


@functools.lru_cache(maxsize=None)
def kernel() -> Optional[ModuleType]:
    """The compiled kernel (built once, then loaded from torch's extension cache); None when it cannot build."""
    capability = torch.backends.cpu.get_cpu_capability()
    flags = _CAPABILITY_FLAGS.get(capability, [])
    try:
        from torch.utils import cpp_extension  # lazy: it needs setuptools, which a runtime install may lack

        _ninja_on_path()
        logger.info("fused BatchNorm+SiLU kernel: loading (its first build on a machine takes about 40 s)")
        return cpp_extension.load(name=f"yolox_bn_silu_{capability.lower()}", sources=[str(_SOURCE)],
                                  extra_cflags=["-O3", "-fopenmp", *flags],
                                  extra_ldflags=["-fopenmp"], verbose=False)
    except Exception as exc:  # any build failure (no compiler, no ninja) leaves the plain modules in use
        logger.warning(f"fused BatchNorm+SiLU kernel unavailable, using nn.BatchNorm2d + nn.SiLU: {exc}")
        return None


def fusable(x: torch.Tensor, bn: nn.BatchNorm2d, act: nn.Module) -> bool:
    """True when batch_norm_silu(x, bn) computes exactly act(bn(x)): SiLU, BatchNorm training on batch
    statistics with running statistics, float32 channels_last CPU input of more than one value per channel."""
    return (type(act) is nn.SiLU and bn.training and bn.track_running_stats and bn.affine
            and bn.running_mean is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and bn.weight.dtype == torch.float32 and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and x.numel() // x.shape[1] > 1 and kernel() is not None)


def _momentum(bn: nn.BatchNorm2d) -> float:
    """Count the batch and return the running-average factor, as nn.BatchNorm2d.forward does in training."""
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


def _as_rows(x: torch.Tensor) -> torch.Tensor:
    """A channels_last (N, C, H, W) tensor as its (N*H*W, C) row-major matrix (a copy only if not dense)."""
    return x.permute(0, 2, 3, 1).contiguous().view(-1, x.shape[1])


def _from_rows(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    n, c, h, w = shape
    return rows.view(n, h, w, c).permute(0, 3, 1, 2)


class _BatchNormSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, running_mean: torch.Tensor,
                running_var: torch.Tensor, momentum: float, eps: float) -> torch.Tensor:
        rows = _as_rows(x)
        out, mean, var, invstd = kernel().forward(rows, weight, bias, eps)
        count = rows.shape[0]
        with torch.no_grad():
            running_mean.mul_(1.0 - momentum).add_(mean, alpha=momentum)
            running_var.mul_(1.0 - momentum).add_(var * (count / (count - 1)), alpha=momentum)
        ctx.save_for_backward(rows, weight, bias, mean, invstd)
        return _from_rows(out, x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        rows, weight, bias, mean, invstd = ctx.saved_tensors
        grad_input, grad_weight, grad_bias = kernel().backward(_as_rows(grad), rows, weight, bias, mean, invstd)
        return _from_rows(grad_input, grad.shape), grad_weight, grad_bias, None, None, None, None


def batch_norm_silu(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """silu(bn(x)) in one kernel, updating bn's running statistics; call only where fusable() is True."""
    return _BatchNormSiLU.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var, _momentum(bn), bn.eps)
