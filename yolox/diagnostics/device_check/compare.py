"""One check's outcome and the difference measures the parts use."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import torch

# When one side is not finite where the other is, the difference is infinite: the check fails.
NOT_FINITE = float("inf")


@dataclass(frozen=True)
class CheckResult:
    """One row of the check: the largest difference between device and CPU against its tolerance."""

    name: str
    part: str                      # forward, loss, assignment, gradients, optimizer, ema, postprocess, ...
    difference: Optional[float]
    tolerance: float
    amp: bool = False
    skipped: Optional[str] = None  # the reason, when the check did not run
    detail: Dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.skipped is not None or (self.difference is not None and self.difference <= self.tolerance)

    @property
    def verdict(self) -> str:
        return "skipped" if self.skipped is not None else ("pass" if self.passed else "FAIL")

    def as_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "verdict": self.verdict,
                "difference": _json_number(self.difference)}


def _json_number(value: Optional[float]) -> Any:
    """JSON has no inf or NaN: they are written as strings."""
    if value is None or math.isfinite(value):
        return value
    return str(value)


def check(name: str, part: str, difference: float, tolerance: float, amp: bool = False, **detail: Any) -> CheckResult:
    """A result whose non-finite difference (NaN on one side) counts as a failure."""
    value = float(difference)
    return CheckResult(name, part, NOT_FINITE if math.isnan(value) else value, tolerance, amp, None, detail)


def skip(name: str, part: str, tolerance: float, reason: str, amp: bool = False) -> CheckResult:
    return CheckResult(name, part, None, tolerance, amp, reason)


def max_abs(device: torch.Tensor, cpu: torch.Tensor) -> float:
    """Largest absolute difference in float64; infinite when the finite masks differ or shapes disagree."""
    device, cpu = device.detach().cpu().double(), cpu.detach().cpu().double()
    if device.shape != cpu.shape or not torch.equal(torch.isfinite(device), torch.isfinite(cpu)):
        return NOT_FINITE
    finite = torch.isfinite(cpu)
    return float((device - cpu)[finite].abs().max()) if finite.any() else 0.0


def relative(device: float, cpu: float) -> float:
    """|device - cpu| / |cpu| (absolute below 1e-12); infinite when either is not finite."""
    if not (math.isfinite(device) and math.isfinite(cpu)):
        return NOT_FINITE
    return abs(device - cpu) / max(abs(cpu), 1e-12)


def scaled_max_abs(device: Sequence[torch.Tensor], cpu: Sequence[torch.Tensor], scale: float) -> float:
    """Largest absolute difference over paired tensors, divided by `scale` (a size of the reference)."""
    worst = max((max_abs(d, c) for d, c in zip(device, cpu)), default=0.0)
    return worst / max(scale, 1e-30)


def per_tensor_relative(device: Sequence[torch.Tensor], cpu: Sequence[torch.Tensor], floor: float) -> float:
    """Largest over tensors of max|device - cpu| / max|cpu| (that norm floored at `floor`)."""
    worst = 0.0
    for d, c in zip(device, cpu):
        worst = max(worst, max_abs(d, c) / max(float(c.detach().abs().max()), floor))
    return worst


def matched_rows_max_abs(device: torch.Tensor, cpu: torch.Tensor) -> float:
    """Rows compared in any order: each CPU row against its nearest device row (max abs over columns)."""
    if device.shape != cpu.shape:
        return NOT_FINITE
    if cpu.numel() == 0:
        return 0.0
    distance = (cpu.double()[:, None, :] - device.double()[None, :, :]).abs().amax(dim=2)
    nearest = distance.min(dim=1).values
    return float(nearest.max()) if torch.isfinite(nearest).all() else NOT_FINITE


def all_finite(tensors: List[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)
