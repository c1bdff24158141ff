"""Runs the device check: the parts in fp32, then under the policy's mixed precision, then the training run."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import torch
from loguru import logger

from yolox.diagnostics.device_check import evaluation, memory_watch, parts
from yolox.diagnostics.device_check import tolerances as tol
from yolox.diagnostics.device_check.bench import Bench, Faults
from yolox.diagnostics.device_check.compare import CheckResult, skip
from yolox.diagnostics.device_check.fixture import fixed_model, load_batch, write_crater_set
from yolox.utils.device import DevicePolicy
from yolox.utils.device.exact_math import exact_fp32

QUICK_SKIP = "--quick: only forward, losses, assignment and decode + NMS run"


@dataclass(frozen=True)
class CheckPlan:
    """What to run: the device's policy, the mixed precision its policy would choose (None: none, and why)."""

    policy: DevicePolicy
    amp_dtype: Optional[torch.dtype] = None
    amp_reason: str = "mixed precision not asked"
    quick: bool = False
    schedule: memory_watch.Schedule = field(default_factory=memory_watch.Schedule)
    faults: Faults = field(default_factory=Faults)


def run_checks(plan: CheckPlan, progress: Callable[[str], None] = logger.info) -> List[CheckResult]:
    """Every check of the plan, in table order; a temporary folder holds the generated crater set."""
    with tempfile.TemporaryDirectory(prefix="yolox_device_check_") as folder, exact_fp32():
        root = write_crater_set(Path(folder))
        batch = load_batch(root)
        eval_images = load_batch(root, evaluation.SPLIT, evaluation.ANN_FILE)
        bench = Bench(plan.policy, fixed_model(torch.cat([batch.images, eval_images.images])), batch, plan.faults)
        eval_set = evaluation.label_with_cpu_detections(bench, root, eval_images)
        progress("device check: forward, losses, assignment, decode + NMS")
        results = _quick_parts(bench, eval_images, eval_set)
        if plan.quick:
            return results + _skipped_rest()
        progress("device check: gradients, optimizer steps, EMA, full evaluation")
        results += _fp32_rest(bench, eval_set)
        progress(f"device check: mixed precision ({_dtype_name(plan.amp_dtype)})")
        results += _amp_parts(bench, eval_set, plan)
        progress(f"device check: {plan.schedule.iterations} training iterations at sizes {plan.schedule.sizes}")
        run = memory_watch.train_and_watch(bench, plan.amp_dtype, plan.schedule)
        return results + memory_watch.training_checks(run, plan.policy.memory.name, plan.amp_dtype is not None)


def _quick_parts(bench: Bench, eval_images, eval_set: evaluation.EvalSet) -> List[CheckResult]:
    tensors = parts.cpu_train_tensors(bench)
    return (parts.forward_checks(bench) + parts.loss_checks(bench, tensors) + parts.assignment_checks(bench, tensors)
            + parts.postprocess_checks(bench, eval_images.images, eval_set.conf_thre, eval_set.nms_thre))


def _fp32_rest(bench: Bench, eval_set: evaluation.EvalSet) -> List[CheckResult]:
    gradient, grads = parts.gradient_check(bench)
    return ([gradient] + parts.optimizer_checks(bench, grads) + [parts.ema_check(bench, grads)]
            + [evaluation.evaluate_both(bench, eval_set)])


def _amp_parts(bench: Bench, eval_set: evaluation.EvalSet, plan: CheckPlan) -> List[CheckResult]:
    if plan.amp_dtype is None:
        reason = f"the policy chooses no mixed precision here: {plan.amp_reason}"
        return [skip(name, part, limit, reason, amp=True) for name, part, limit in AMP_ROWS]
    tensors_loss = parts.amp_loss_check(bench, plan.amp_dtype)
    gradient, cpu_grads = parts.gradient_check(bench, plan.amp_dtype)
    return (parts.forward_checks(bench, plan.amp_dtype) + [tensors_loss, gradient]
            + _skipped_step_parts(bench, plan.amp_dtype, cpu_grads)
            + [evaluation.evaluate_both(bench, eval_set, plan.amp_dtype)])


def _skipped_step_parts(bench: Bench, amp: torch.dtype, cpu_grads: List[torch.Tensor]) -> List[CheckResult]:
    """Loss scaling, and so a skipped step, exists under fp16 only."""
    if amp == torch.float16:
        return parts.skipped_step_checks(bench, cpu_grads)
    reason = f"{_dtype_name(amp)} trains without loss scaling: no step is skipped"
    return [skip(name, part, limit, reason, amp=True) for name, part, limit in SKIPPED_STEP_ROWS]


def _skipped_rest() -> List[CheckResult]:
    rows = [("gradients", "gradients", tol.GRADIENT), ("optimizer step: SGD", "optimizer", tol.STEP),
            ("optimizer step: AdamW", "optimizer", tol.STEP), ("EMA update", "ema", tol.STEP),
            ("evaluation AP", "evaluation", tol.AP)]
    return ([skip(name, part, limit, QUICK_SKIP) for name, part, limit in rows]
            + [skip(name, part, limit, QUICK_SKIP, amp=True) for name, part, limit in AMP_ROWS]
            + [skip("training: non-finite losses", "training", tol.NONFINITE_STEPS, QUICK_SKIP),
               skip("training: memory growth", "memory", tol.GROWTH_FLOOR_MIB, QUICK_SKIP)])


SKIPPED_STEP_ROWS = (("optimizer step after a skipped one: SGD (amp)", "optimizer", tol.STEP),
                     ("optimizer step after a skipped one: AdamW (amp)", "optimizer", tol.STEP))
AMP_ROWS = (("forward, eval mode (amp)", "forward", tol.AMP_FORWARD),
            ("forward, train mode (amp)", "forward", tol.AMP_FORWARD),
            ("loss: total (amp)", "loss", tol.AMP_LOSS), ("gradients (amp)", "gradients", tol.AMP_GRADIENT),
            *SKIPPED_STEP_ROWS, ("evaluation AP50 (amp)", "evaluation", tol.AMP_AP50))


def _dtype_name(dtype: Optional[torch.dtype]) -> str:
    return "none" if dtype is None else str(dtype).replace("torch.", "")
