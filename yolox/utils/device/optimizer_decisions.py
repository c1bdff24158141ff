"""The optimizer's decisions: fused kernels, and whether the non-finite guard's verdict may be read a step late."""
from __future__ import annotations

from typing import Optional

import torch

from yolox.utils.device.decision_record import _Decisions
from yolox.utils.device.selection import _torch_version

__all__ = ["decide_fused_optimizer", "decide_late_guard"]


def decide_fused_optimizer(out: _Decisions, kind: str, fused_optimizer: Optional[bool]) -> None:
    if fused_optimizer is not None:
        out.set("fused_optimizer", bool(fused_optimizer), "set explicitly")
    elif kind == "cuda" and _torch_version() < (2, 3):
        out.set("fused_optimizer", False, f"fused SGD needs torch 2.3+ (this is {torch.__version__})")
    elif kind == "cuda":
        out.set("fused_optimizer", True, "fused SGD/AdamW take the GradScaler's inf check on the GPU, so the step "
                                         "does not wait for the device to read it back (the foreach path does)")
    elif kind == "mps":
        out.set("fused_optimizer", False, "not measured on a Mac: the foreach optimizer is the tested path")
    else:
        out.set("fused_optimizer", False, "no GradScaler on the CPU, so no device wait to save; foreach is the "
                                          "tested path")


def decide_late_guard(out: _Decisions, kind: str) -> None:
    if out.values["fused_optimizer"]:
        out.set("late_guard", True, "the fused optimizer skips a non-finite step on the device itself (found_inf), so "
                                    "no step waits for the guard's verdict; the guard reads it one step later")
    elif kind == "cpu":
        out.set("late_guard", False, "the CPU computes synchronously: the verdict is read before the optimizer "
                                     "step at no cost")
    else:
        out.set("late_guard", False, f"the foreach optimizer on {kind} cannot skip a step on the device: the "
                                     "verdict is read before the optimizer step")
