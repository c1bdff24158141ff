"""The check's report: the JSON a user pastes into an issue, the printed table and the one-line verdict."""
from __future__ import annotations

import datetime
import math
from typing import Any, Dict, List, Optional

import torch
from tabulate import tabulate

from yolox.diagnostics.device_check.compare import CheckResult
from yolox.utils.device import DevicePolicy
from yolox.utils.device.selfcheck_report import CHECK_COMMAND, REPORT_FORMAT, machine_facts

MEMORY_TERMS = {"mps": "MPS driver-allocated", "cuda": "CUDA reserved", "cpu": "process RSS"}


def build_report(results: List[CheckResult], policy: DevicePolicy, amp_dtype: Optional[torch.dtype],
                 amp_reason: str, quick: bool, wall_s: float) -> Dict[str, Any]:
    """Everything the check measured, with the machine it ran on: plain JSON types only."""
    return {
        "format": REPORT_FORMAT,
        "tool": CHECK_COMMAND,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "kind": policy.kind,
        "device": str(policy.device),
        "simulated": policy.simulated,
        "quick": quick,
        "amp": {"dtype": None if amp_dtype is None else str(amp_dtype).replace("torch.", ""), "reason": amp_reason},
        "memory": {"backend": policy.memory.name, "measures": MEMORY_TERMS.get(policy.memory.name, policy.memory.name)},
        "machine": machine_facts(policy.device),
        "wall_s": round(wall_s, 1),
        "passed": all(result.passed for result in results),
        "verdict": verdict_line(results, policy.kind),
        "checks": [result.as_dict() for result in results],
    }


def verdict_line(results: List[CheckResult], kind: str) -> str:
    """One line: all passed, or which checks failed."""
    ran = [result for result in results if result.skipped is None]
    failed = [result.name for result in ran if not result.passed]
    skipped = len(results) - len(ran)
    tail = f", {skipped} skipped" if skipped else ""
    if not failed:
        return f"PASS: {kind} agrees with the CPU in all {len(ran)} checks that ran{tail}"
    return f"FAIL: {kind} disagrees with the CPU in {len(failed)} of {len(ran)} checks ({', '.join(failed)}){tail}"


def table(results: List[CheckResult]) -> str:
    """The printed table (check, largest difference, tolerance, verdict) and, below it, each skip reason once."""
    rows = [(result.name, _number(result.difference), _number(result.tolerance), result.verdict)
            for result in results]
    text = tabulate(rows, headers=("check", "largest difference", "tolerance", "verdict"), tablefmt="simple")
    reasons = list(dict.fromkeys(result.skipped for result in results if result.skipped))
    return text + "".join(f"\nskipped: {reason}" for reason in reasons)


def _number(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "non-finite"
    return "0" if value == 0 else f"{value:.3g}"
