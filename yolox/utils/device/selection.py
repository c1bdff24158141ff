"""Which device a request names, how many there are, and why one is unavailable."""
from __future__ import annotations

import os
import platform
import re
import sys
from typing import Optional, Tuple

import torch

from yolox.utils.user_errors import UserError

KINDS = ("cuda", "mps", "cpu")


class DeviceUnavailableError(UserError, RuntimeError):
    """The requested device cannot be used here; the message says why and what to do."""


class UnknownDeviceError(UserError, ValueError):
    """The device string names no device we know; the message lists the accepted spellings."""


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
        raise UnknownDeviceError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N, gpu or mps")
    kind, index = match.group(1), match.group(2)
    kind = "cuda" if kind == "gpu" else kind
    if index is not None and kind in ("auto", "cpu"):
        raise UnknownDeviceError(f"device {requested!r} takes no index: use {kind!r}")
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
