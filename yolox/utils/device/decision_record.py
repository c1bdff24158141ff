"""The scratchpad a device policy is decided on: each decision's value and its one-line reason."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List

__all__ = ["DOCS", "_Decisions"]

# where each reason's figures and sources live
DOCS = "docs/devices.md#"


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
