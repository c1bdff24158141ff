"""Batch size by measurement: peak memory of real training steps, fitted as a + b x batch.

The device policy says how memory is read (CUDA peak counters, MPS driver memory against the
recommended maximum, CPU process memory against RAM); this module only probes, fits and chooses.
"""
import copy
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
from loguru import logger
from tabulate import tabulate

DEFAULT_PROBE_SIZES = (1, 2, 4, 8, 16, 32, 64)
_MIB = 1024 ** 2


@dataclass(frozen=True)
class MemoryProbe:
    """Peak memory of one training step at `batch_size`; peak_bytes None means out of memory."""

    batch_size: int
    peak_bytes: Optional[int]
    seconds: float = 0.0


@dataclass(frozen=True)
class BatchDecision:
    """The batch size chosen (or checked) and everything that explains it."""

    batch_size: int
    reason: str
    probes: Tuple[MemoryProbe, ...]
    intercept_bytes: float
    slope_bytes: float
    budget_bytes: float
    limit_bytes: int
    fits: bool = True

    def predicted_bytes(self, batch_size: int) -> float:
        return self.intercept_bytes + self.slope_bytes * batch_size

    def table(self) -> str:
        """The measured probes beside the fitted line, for the log."""
        rows = []
        for probe in self.probes:
            measured = "OOM" if probe.peak_bytes is None else f"{probe.peak_bytes / _MIB:.0f}"
            rows.append([probe.batch_size, measured, f"{self.predicted_bytes(probe.batch_size) / _MIB:.0f}",
                         f"{probe.seconds:.2f}"])
        return tabulate(rows, headers=["batch", "peak MiB", "fit MiB", "step s"], tablefmt="github")


def fit_memory_line(batch_sizes: Sequence[int], peak_bytes: Sequence[float]) -> Tuple[float, float]:
    """Least-squares (intercept, slope) of memory against batch; one point gives a line through 0."""
    if not batch_sizes:
        raise ValueError("no successful memory probe to fit")
    if len(set(batch_sizes)) == 1:
        return 0.0, float(peak_bytes[0]) / batch_sizes[0]
    slope, intercept = np.polyfit(np.asarray(batch_sizes, np.float64), np.asarray(peak_bytes, np.float64), 1)
    return float(intercept), float(slope)


def round_down_to_multiple(batch_size: int, multiple: int) -> int:
    """Largest multiple of `multiple` not above batch_size; below one multiple, the largest power of 2."""
    if batch_size < 1:
        return 0
    if batch_size >= multiple:
        return batch_size // multiple * multiple
    return 1 << (batch_size.bit_length() - 1)


def largest_fitting_batch(intercept: float, slope: float, budget: float, multiple: int = 8,
                          max_batch: int = 64) -> int:
    """Largest batch (rounded by round_down_to_multiple, at most max_batch) whose fitted memory is within budget."""
    if slope <= 0:
        raw = max_batch
    else:
        raw = int(min(max_batch, np.floor((budget - intercept) / slope)))
    return round_down_to_multiple(min(raw, max_batch), multiple)


def measure_step_memory(step: Callable[[int], None], policy, budget_bytes: float,
                        batch_sizes: Sequence[int] = DEFAULT_PROBE_SIZES,
                        time_budget_s: float = 60.0) -> List[MemoryProbe]:
    """Run `step(batch)` at growing sizes and record the policy's peak memory of each.

    Growing stops at the first out-of-memory error, once a measured peak exceeds the budget, once the
    next size is predicted to exceed it, or once the probes have used up `time_budget_s`.
    """
    probes: List[MemoryProbe] = []
    started = time.perf_counter()
    for batch_size in batch_sizes:
        policy.release_cache()
        policy.reset_peak_memory()
        step_start = time.perf_counter()
        try:
            step(batch_size)
            policy.synchronize()
        except RuntimeError as exc:
            if not policy.is_oom(exc):
                raise
            probes.append(MemoryProbe(batch_size, None, time.perf_counter() - step_start))
            policy.release_cache()
            break
        peak = int(policy.peak_memory())
        step_seconds = time.perf_counter() - step_start
        probes.append(MemoryProbe(batch_size, peak, step_seconds))
        if peak > budget_bytes:
            break
        fitted = [p for p in probes if p.peak_bytes is not None]
        if len(fitted) >= 2 and batch_sizes.index(batch_size) + 1 < len(batch_sizes):
            intercept, slope = fit_memory_line([p.batch_size for p in fitted], [p.peak_bytes for p in fitted])
            next_size = batch_sizes[batch_sizes.index(batch_size) + 1]
            if intercept + slope * next_size > budget_bytes:
                break
        spent = time.perf_counter() - started
        # the next, larger step takes at least about twice as long as this one
        if len(probes) >= 2 and spent + 2 * step_seconds > time_budget_s:
            break
    policy.release_cache()
    return probes


def choose_batch_size(probes: Sequence[MemoryProbe], limit_bytes: int, target_fraction: float = 0.8,
                      multiple: int = 8, max_batch: int = 64, requested: Optional[int] = None,
                      fixed_bytes: float = 0.0) -> BatchDecision:
    """Fit the probes and choose the batch (or check `requested`); fixed_bytes adds state not in the probes."""
    if not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target memory fraction must be in (0, 1], got {target_fraction}")
    fitted = [p for p in probes if p.peak_bytes is not None]
    if not fitted:
        raise RuntimeError(
            f"out of memory at batch {probes[0].batch_size if probes else 1}: the model does not fit this device; "
            "try --grad-ckpt, a smaller input size or a smaller model")
    intercept, slope = fit_memory_line([p.batch_size for p in fitted], [p.peak_bytes for p in fitted])
    intercept += fixed_bytes
    budget = target_fraction * limit_bytes
    first_oom = next((p.batch_size for p in probes if p.peak_bytes is None), None)
    cap = max_batch if first_oom is None else min(max_batch, first_oom - 1)
    common = dict(probes=tuple(probes), intercept_bytes=intercept, slope_bytes=slope, budget_bytes=budget,
                  limit_bytes=int(limit_bytes))
    if requested is not None:
        predicted = intercept + slope * requested
        fits = predicted <= budget and (first_oom is None or requested < first_oom)
        reason = (f"-b {requested} as requested; fitted memory {predicted / _MIB:.0f} MiB "
                  f"{'is within' if fits else 'EXCEEDS'} {target_fraction:.0%} of {limit_bytes / _MIB:.0f} MiB")
        return BatchDecision(batch_size=requested, reason=reason, fits=fits, **common)
    batch_size = max(1, largest_fitting_batch(intercept, slope, budget, multiple, cap))
    limited_by = "the memory fit" if batch_size < round_down_to_multiple(cap, multiple) else (
        f"out of memory at batch {first_oom}" if first_oom is not None else f"the cap of {max_batch}")
    reason = (f"batch {batch_size}: largest multiple of {multiple} (or power of 2 below it) with fitted memory "
              f"{(intercept + slope * batch_size) / _MIB:.0f} MiB within {target_fraction:.0%} of "
              f"{limit_bytes / _MIB:.0f} MiB (fit: {intercept / _MIB:.0f} MiB + {slope / _MIB:.1f} MiB/image; "
              f"limited by {limited_by})")
    return BatchDecision(batch_size=batch_size, reason=reason, **common)


def random_detection_batch(batch_size: int, input_size: Tuple[int, int], num_boxes: int, max_labels: int,
                           num_classes: int, device: torch.device, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images [B, 3, H, W] in 0..255 and padded labels [B, max_labels, 5] with num_boxes boxes each."""
    generator = torch.Generator().manual_seed(seed)
    height, width = input_size
    images = torch.rand(batch_size, 3, height, width, generator=generator) * 255
    labels = torch.zeros(batch_size, max_labels, 5)
    count = min(num_boxes, max_labels)
    sizes = 8 + torch.rand(batch_size, count, 2, generator=generator) * (min(height, width) / 4)
    centres = torch.rand(batch_size, count, 2, generator=generator) * torch.tensor([width, height])
    labels[:, :count, 0] = torch.randint(0, max(num_classes, 1), (batch_size, count), generator=generator).float()
    labels[:, :count, 1:3] = centres
    labels[:, :count, 3:5] = sizes
    return images.to(device), labels.to(device)


def make_training_step(model: torch.nn.Module, policy, input_size: Tuple[int, int], num_boxes: int,
                       max_labels: int, num_classes: int) -> Callable[[int], None]:
    """A step(batch) closure: one forward and backward of the detector on random data under the policy's autocast."""

    def step(batch_size: int) -> None:
        images, labels = random_detection_batch(batch_size, input_size, num_boxes, max_labels, num_classes,
                                                policy.device)
        try:
            with policy.autocast():
                losses = model(images, labels)
            # activations are all alive here; backends that sample their peak (CPU, MPS) need this read
            policy.memory_allocated()
            losses["total_loss"].backward()
        finally:
            model.zero_grad(set_to_none=True)

    return step


def autobatch(model: torch.nn.Module, policy, input_size: Tuple[int, int], *, num_classes: int,
              target_fraction: float = 0.8, multiple: int = 8, max_batch: int = 64,
              requested: Optional[int] = None, num_boxes: int = 50, max_labels: int = 120,
              batch_sizes: Sequence[int] = DEFAULT_PROBE_SIZES, time_budget_s: float = 60.0,
              optimizer_state_copies: int = 2) -> BatchDecision:
    """Measure the model's training-step memory on the policy's device and choose (or check) a batch size.

    The model is left as it was (weights, BatchNorm statistics, train/eval mode, no gradients).
    optimizer_state_copies: parameter-sized buffers the real run adds (SGD momentum, EMA copy).
    """
    limit = int(policy.memory_limit())
    budget = target_fraction * limit
    sizes = [size for size in batch_sizes if size <= max(max_batch, requested or 0)]
    if requested is not None:
        # checking a given batch needs a line, not a search: two cheap points are enough
        sizes = sorted({1, 2} | ({requested} if requested <= 2 else set()))
    saved_state = copy.deepcopy(model.state_dict())
    was_training = model.training
    model.train()
    try:
        step = make_training_step(model, policy, input_size, num_boxes, max_labels, num_classes)
        probes = measure_step_memory(step, policy, budget, sizes, time_budget_s)
    finally:
        model.load_state_dict(saved_state)
        model.train(was_training)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    decision = choose_batch_size(probes, limit, target_fraction, multiple, max_batch, requested,
                                 fixed_bytes=optimizer_state_copies * param_bytes)
    logger.info("autobatch on {} ({}x{} input):\n{}", policy.kind, input_size[0], input_size[1], decision.table())
    if not decision.fits:
        logger.warning("autobatch: {}; expect out-of-memory recovery to halve it, or pass -b auto", decision.reason)
    else:
        logger.info("autobatch: {}", decision.reason)
    return decision
