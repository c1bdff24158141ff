"""The device self-check's report as the device layer reads it: where it is kept, whether it applies here, which
checks failed. The check itself (models, data) lives in yolox.diagnostics.device_check; this module imports none
of that: a report is plain JSON.

A report is kept per device kind and torch version in the user cache
($XDG_CACHE_HOME or ~/.cache)/yolox/device_check/<kind>-<torch>.json, written atomically.
"""
from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import psutil
import torch
from loguru import logger

from yolox.utils.device.memory import GIB

REPORT_FORMAT = 1
# Parts whose disagreement moves that part to the CPU: (check part, decision).
CPU_FALLBACKS = (("assignment", "assign_on_cpu"), ("loss", "loss_on_cpu"), ("postprocess", "postprocess_on_cpu"))
MEMORY_PART = "memory"
# How the tool is run, for messages that tell the user what to do.
CHECK_COMMAND = "python tools/check_device.py"

Report = Mapping[str, Any]


def cache_dir() -> Path:
    """Where reports are kept: $XDG_CACHE_HOME/yolox/device_check, else ~/.cache/yolox/device_check."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / "yolox" / "device_check"


def report_path(kind: str, torch_version: Optional[str] = None) -> Path:
    """The cached report of a device kind for a torch version (this torch by default)."""
    version = re.sub(r"[^0-9A-Za-z.+_-]", "_", torch_version or torch.__version__)
    return cache_dir() / f"{kind}-{version}.json"


def machine_facts(device: torch.device) -> Dict[str, Any]:
    """What a maintainer needs to read a report: OS, CPU, memory, Python, torch, and the device's name."""
    return {
        "system": platform.system(), "release": platform.release(), "mac_version": platform.mac_ver()[0] or None,
        "machine": platform.machine(), "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "device": str(device), "device_name": device_name(device),
    }


def device_name(device: torch.device) -> str:
    """The accelerator's product name where torch can tell it, else the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} GPU (MPS)"
    return platform.processor() or platform.machine()


def write_report(report: Report, path: Path) -> Path:
    """Write `report` as JSON to `path` atomically (temporary name, flush, rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "w") as handle:
        json.dump(report, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return path


def read_report(path: Path) -> Optional[Dict[str, Any]]:
    """The report at `path`; None when there is none or it cannot be read (a warning says which)."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning(f"device check report {path} unreadable ({error}); ignored: run {CHECK_COMMAND} again")
        return None


def mismatch(report: Report, kind: str) -> Optional[str]:
    """Why `report` does not describe this machine's `kind` device under this torch; None when it does."""
    if report.get("format") != REPORT_FORMAT or not isinstance(report.get("checks"), list):
        return f"format {report.get('format')!r} is not {REPORT_FORMAT}"
    if report.get("kind") != kind:
        return f"it checked {report.get('kind')!r}, not {kind!r}"
    made_with = report.get("machine", {}).get("torch")
    if made_with != torch.__version__:
        return f"it was made with torch {made_with}, this is torch {torch.__version__}"
    here = (platform.system(), platform.machine())
    there = tuple(report.get("machine", {}).get(key) for key in ("system", "machine"))
    if there != here:
        return f"it was made on {'/'.join(map(str, there))}, this is {'/'.join(here)}"
    return None


def failed_checks(report: Report) -> List[Mapping[str, Any]]:
    """The checks of `report` that ran and failed."""
    return [row for row in report.get("checks", []) if not row.get("passed", False)]


def cached_report(kind: str) -> Tuple[Optional[Dict[str, Any]], Path]:
    """(the cached report of `kind` for this torch if there is one, its path)."""
    path = report_path(kind)
    return read_report(path), path


def quick_check_needed(policy: Any) -> bool:
    """True on MPS when no report for this machine and torch is cached: run the quick check before training."""
    if policy.kind != "mps":
        return False
    report, _ = cached_report(policy.kind)
    return report is None or mismatch(report, policy.kind) is not None
