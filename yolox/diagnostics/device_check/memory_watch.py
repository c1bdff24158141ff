"""The training run of the check: iterations across the multi-scale sizes on the device, watching its memory.

Memory is what the policy's backend calls driver memory: MPS driver-allocated, CUDA reserved, CPU resident (RSS).
Every iteration's loss must also be finite.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from yolox.diagnostics.device_check import tolerances as tol
from yolox.diagnostics.device_check.bench import Bench
from yolox.diagnostics.device_check.compare import CheckResult, check
from yolox.diagnostics.device_check.fixture import resized
from yolox.diagnostics.device_check.parts import SGD, autocast_for
from yolox.utils.device import MIB
from yolox.utils.ema import ModelEMA

ITERATIONS = 50
SIZES = (160, 192, 224, 256)   # multi-scale input sizes (multiples of 32)
CHANGE_EVERY = 5               # iterations per size; one cycle is len(SIZES) x CHANGE_EVERY iterations


@dataclass(frozen=True)
class Schedule:
    """The run's input sizes, iterations per size, and length (tests use a short one)."""

    sizes: Tuple[int, ...] = SIZES
    change_every: int = CHANGE_EVERY
    iterations: int = ITERATIONS

    @property
    def cycle(self) -> int:
        return len(self.sizes) * self.change_every

    def size_at(self, iteration: int) -> int:
        """The input size of a 0-based iteration."""
        return self.sizes[(iteration // self.change_every) % len(self.sizes)]


GROWTH_RULE = (f"every size is seen in the first cycle of sizes, so by its end the allocator holds what each "
               f"needs; the peak of the last cycle may exceed the peak of the first by at most "
               f"max({tol.GROWTH_FLOOR_MIB:g} MiB, {tol.GROWTH_FRACTION:g} x the first peak)")


@dataclass(frozen=True)
class TrainingRun:
    """Per-iteration driver memory (MiB) and losses of the check's training run."""

    memory_mib: List[float]
    losses: List[float]
    sizes: List[int]
    cycle: int


def train_and_watch(bench: Bench, amp: Optional[torch.dtype], schedule: Schedule = Schedule()) -> TrainingRun:
    """Train a device copy of the model on `schedule` (SGD, EMA, the policy's cache releases)."""
    policy = bench.policy
    model = bench.device_model(train=True)
    optimizer = torch.optim.SGD(model.parameters(), **SGD)
    ema = ModelEMA(model)
    scaler = torch.amp.GradScaler(bench.device.type, enabled=amp == torch.float16)
    memory, losses, sizes = [], [], []
    for iteration in range(schedule.iterations):
        size = schedule.size_at(iteration)
        batch = resized(bench.batch, size)
        with autocast_for(bench, amp):
            loss = model(bench.on_device(batch.images), bench.on_device(batch.labels))["total_loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        ema.update(model)
        losses.append(float(loss.detach()))
        if policy.should_release_cache(iteration + 1):
            policy.release_cache()
        policy.synchronize()
        memory.append(policy.memory.driver_allocated() / MIB)
        sizes.append(size)
    return TrainingRun(memory, losses, sizes, schedule.cycle)


def growth_rule(memory_mib: List[float], cycle: int) -> Tuple[float, float]:
    """(growth in MiB from the first cycle's peak to the last cycle's, the allowed growth in MiB)."""
    first, last = max(memory_mib[:cycle]), max(memory_mib[-cycle:])
    return last - first, max(tol.GROWTH_FLOOR_MIB, tol.GROWTH_FRACTION * first)


def training_checks(run: TrainingRun, backend: str, amp: bool) -> List[CheckResult]:
    """Non-finite losses of the run, and its memory growth."""
    bad = [index + 1 for index, value in enumerate(run.losses) if not math.isfinite(value)]
    growth, allowed = growth_rule(run.memory_mib, run.cycle)
    return [check(f"training: non-finite losses ({len(run.losses)} its)", "training", len(bad),
                  tol.NONFINITE_STEPS, amp, first_bad_iteration=bad[0] if bad else None),
            check(f"training: memory growth ({backend}, MiB)", "memory", growth, allowed, amp,
                  first_cycle_peak_mib=max(run.memory_mib[:run.cycle]),
                  readings_mib=[round(value, 1) for value in run.memory_mib], sizes=run.sizes,
                  rule=GROWTH_RULE)]
