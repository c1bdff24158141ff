"""Batch size by measurement: memory and images per second of real training steps at growing batch sizes.

The device policy says how memory is read and how the device is synchronised (CUDA peak counters, MPS driver
memory against the recommended maximum, CPU process memory against RAM); this module probes, fits memory as
a + b x batch, and chooses the batch by throughput within the memory budget.
"""
import copy
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from loguru import logger
from tabulate import tabulate

_MIB = 1024 ** 2
# each size runs one warm-up step (allocator growth, cuDNN autotuning, its peak memory), then this many timed
TIMED_STEPS = 2
# keep doubling while a doubling still gains this much img/s: the gain shrinks once per-step fixed costs are
# amortised (on a CPU at once), so a smaller gain means the larger sizes would only cost probe time
MIN_GAIN_TO_GROW = 0.05
# the smallest batch within this fraction of the best img/s: nearly the same speed with more optimizer steps per
# epoch, and two timed steps do not resolve smaller differences
THROUGHPUT_TOLERANCE = 0.10
# BatchNorm statistics and the batch mosaic's partner tiles both come from the batch: fewer images than this only
# where memory forces it
MIN_BATCH = 8
# an epoch is the unit of evaluation and of the LR schedule: at least this many optimizer steps per epoch ...
MIN_STEPS_PER_EPOCH = 8
# ... unless that would cap the batch below this (a small data set must not hold a large GPU at batch 8)
STEP_FLOOR_MIN_BATCH = 16

Clock = Callable[[], float]
Step = Callable[[int], None]


@dataclass(frozen=True)
class MemoryProbe:
    """Peak memory and seconds per training step at `batch_size`; peak_bytes None means out of memory."""

    batch_size: int
    peak_bytes: Optional[int]
    seconds: float = 0.0

    @property
    def images_per_second(self) -> Optional[float]:
        """Throughput of the timed steps; None for an out-of-memory or untimed probe."""
        if self.peak_bytes is None or self.seconds <= 0:
            return None
        return self.batch_size / self.seconds


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
        """The measured probes beside the fitted line and their throughput, for the log."""
        rows = []
        for probe in self.probes:
            measured = "OOM" if probe.peak_bytes is None else f"{probe.peak_bytes / _MIB:.0f}"
            rate = probe.images_per_second
            rows.append([probe.batch_size, measured, f"{self.predicted_bytes(probe.batch_size) / _MIB:.0f}",
                         f"{probe.seconds:.3f}", "-" if rate is None else f"{rate:.1f}"])
        return tabulate(rows, headers=["batch", "peak MiB", "fit MiB", "step s", "img/s"], tablefmt="github")


def fit_memory_line(batch_sizes: Sequence[int], peak_bytes: Sequence[float]) -> Tuple[float, float]:
    """Least-squares (intercept, slope) of memory against batch; one point gives a line through 0."""
    if not batch_sizes:
        raise ValueError("no successful memory probe to fit")
    if len(set(batch_sizes)) == 1:
        return 0.0, float(peak_bytes[0]) / batch_sizes[0]
    slope, intercept = np.polyfit(np.asarray(batch_sizes, np.float64), np.asarray(peak_bytes, np.float64), 1)
    return float(intercept), float(slope)


def fit_probes(probes: Sequence[MemoryProbe]) -> Tuple[float, float]:
    """fit_memory_line over the probes that did not run out of memory."""
    fitted = [p for p in probes if p.peak_bytes is not None]
    return fit_memory_line([p.batch_size for p in fitted], [p.peak_bytes for p in fitted])


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


def probe_sizes(max_batch: int) -> List[int]:
    """Doubling sizes from 1 below max_batch, then max_batch itself."""
    sizes = [1 << power for power in range(max(max_batch, 1).bit_length()) if 1 << power < max_batch]
    return sizes + [max(max_batch, 1)]


def step_cap(train_images: Optional[int], min_steps_per_epoch: int = MIN_STEPS_PER_EPOCH) -> Optional[int]:
    """The largest batch that leaves min_steps_per_epoch steps per epoch, but not below STEP_FLOOR_MIN_BATCH
    (nor above the data set); None without a data set size."""
    if train_images is None:
        return None
    per_steps = train_images // max(min_steps_per_epoch, 1)
    return max(1, min(train_images, max(STEP_FLOOR_MIN_BATCH, per_steps)))


def run_probe(step: Step, policy, batch_size: int, timed_steps: int = TIMED_STEPS,
              clock: Clock = time.perf_counter) -> MemoryProbe:
    """One warm-up step, then `timed_steps` timed between two synchronisations; the peak memory of all of them.

    With timed_steps 0 the warm-up step's own time is recorded.
    """
    policy.release_cache()
    policy.reset_peak_memory()
    started = clock()
    try:
        step(batch_size)
        policy.synchronize()
        timed_from = clock()
        for _ in range(timed_steps):
            step(batch_size)
        policy.synchronize()
    except RuntimeError as exc:
        if not policy.is_oom(exc):
            raise
        policy.release_cache()
        return MemoryProbe(batch_size, None, clock() - started)
    finished = clock()
    seconds = (finished - timed_from) / timed_steps if timed_steps else finished - started
    return MemoryProbe(batch_size, int(policy.peak_memory()), seconds)


def next_probe_size(probes: Sequence[MemoryProbe], batch_sizes: Sequence[int], budget_bytes: float,
                    multiple: int = 8) -> Optional[int]:
    """The next listed size, or the largest fitting size below it where the memory fit puts it over budget;
    None once a probe ran out of memory or over budget, or nothing larger fits."""
    last = probes[-1]
    if last.peak_bytes is None or last.peak_bytes > budget_bytes:
        return None
    following = next((size for size in batch_sizes if size > last.batch_size), None)
    if following is None or sum(p.peak_bytes is not None for p in probes) < 2:
        return following
    intercept, slope = fit_probes(probes)
    if intercept + slope * following <= budget_bytes:
        return following
    largest = largest_fitting_batch(intercept, slope, budget_bytes, multiple, following)
    return largest if largest > last.batch_size else None


def throughput_saturated(probes: Sequence[MemoryProbe], min_gain: float = MIN_GAIN_TO_GROW) -> bool:
    """True when the last probe's img/s is less than min_gain above the best of the smaller probes."""
    rates = [probe.images_per_second for probe in probes]
    if len(rates) < 2 or None in rates:
        return False
    return rates[-1] < (1 + min_gain) * max(rates[:-1])


def measure_steps(step: Step, policy, budget_bytes: float, batch_sizes: Sequence[int],
                  time_budget_s: float = 60.0, *, multiple: int = 8, timed_steps: int = TIMED_STEPS,
                  min_gain: float = MIN_GAIN_TO_GROW, clock: Clock = time.perf_counter) -> List[MemoryProbe]:
    """Probe growing sizes (see next_probe_size) until out of memory, over the memory budget, throughput stops
    growing, the sizes run out, or the next probe is predicted to end after `time_budget_s`."""
    probes: List[MemoryProbe] = []
    started = clock()
    batch_size: Optional[int] = batch_sizes[0]
    while batch_size is not None:
        probe_start = clock()
        probes.append(run_probe(step, policy, batch_size, timed_steps, clock))
        following = next_probe_size(probes, batch_sizes, budget_bytes, multiple)
        if following is None or throughput_saturated(probes, min_gain):
            break
        # a probe's time grows at most about in proportion to its batch
        predicted = (clock() - probe_start) * following / batch_size
        batch_size = following if clock() - started + predicted <= time_budget_s else None
    policy.release_cache()
    return probes


def throughput_pick(probes: Sequence[MemoryProbe], tolerance: float = THROUGHPUT_TOLERANCE) -> Tuple[int, str]:
    """The smallest timed probe within `tolerance` of the best img/s, and why (probes must be timed)."""
    best = max(probes, key=lambda probe: probe.images_per_second)
    floor = (1 - tolerance) * best.images_per_second
    pick = min(p.batch_size for p in probes if p.images_per_second >= floor)
    return pick, (f"smallest measured batch within {tolerance:.0%} of the best {best.images_per_second:.1f} img/s "
                  f"(batch {best.batch_size})")


def choose_batch_size(probes: Sequence[MemoryProbe], limit_bytes: int, target_fraction: float = 0.8,
                      multiple: int = 8, max_batch: int = 64, requested: Optional[int] = None,
                      fixed_bytes: float = 0.0, *, min_batch: int = MIN_BATCH,
                      tolerance: float = THROUGHPUT_TOLERANCE, cap_reason: Optional[str] = None) -> BatchDecision:
    """Fit the probes and choose the batch by throughput (or check `requested`); fixed_bytes adds state not in
    the probes.

    Among the probes that fit the budget, the smallest within `tolerance` of the best img/s, raised to
    min_batch where memory allows; untimed probes give the largest batch that fits. cap_reason names what
    set max_batch (default: "the cap of N").
    """
    if not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target memory fraction must be in (0, 1], got {target_fraction}")
    if not any(p.peak_bytes is not None for p in probes):
        raise RuntimeError(
            f"out of memory at batch {probes[0].batch_size if probes else 1}: the model does not fit this device; "
            "try --grad-ckpt, a smaller input size or a smaller model")
    intercept, slope = fit_probes(probes)
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
    largest = max(1, largest_fitting_batch(intercept, slope, budget, multiple, cap))
    limited_by = "the memory fit" if largest < round_down_to_multiple(cap, multiple) else (
        f"out of memory at batch {first_oom}" if first_oom is not None else cap_reason or f"the cap of {max_batch}")
    timed = [p for p in probes if p.images_per_second is not None and p.batch_size <= largest
             and p.peak_bytes + fixed_bytes <= budget]
    batch_size, why = throughput_pick(timed, tolerance) if timed else (largest, "no timed probe: the largest that fits")
    if batch_size < min(min_batch, largest):
        batch_size = min(min_batch, largest)
        why = f"{why}, raised to {batch_size} by the floor of {min_batch} images (or as many as fit)"
    reason = (f"batch {batch_size}: {why}; memory allows {largest} (largest multiple of {multiple}, or power of 2 "
              f"below it, within {target_fraction:.0%} of {limit_bytes / _MIB:.0f} MiB; fit: "
              f"{intercept / _MIB:.0f} MiB + {slope / _MIB:.1f} MiB/image; limited by {limited_by})")
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
                       max_labels: int, num_classes: int) -> Step:
    """A step(batch) closure: forward, backward and an SGD step of the detector on random data under the
    policy's autocast; the data of a size is made once, so the timed steps measure the model alone.

    The labels hold min(num_boxes, max_labels) rows without padding, as training trims its label padding.
    The SGD step (learning rate 0: the weights stay, and it keeps no state) stands in for the optimizer's
    per-step cost, which larger batches amortise; its momentum and EMA buffers are autobatch's
    optimizer_state_copies.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    rows = max(1, min(num_boxes, max_labels))
    data: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}

    def step(batch_size: int) -> None:
        if batch_size not in data:
            data.clear()   # one size's batch on the device at a time
            data[batch_size] = random_detection_batch(batch_size, input_size, num_boxes, rows, num_classes,
                                                      policy.device)
        images, labels = data[batch_size]
        try:
            with policy.autocast():
                losses = model(images, labels)
            # activations are all alive here; backends that sample their peak (CPU, MPS) need this read
            policy.memory_allocated()
            losses["total_loss"].backward()
            optimizer.step()
        finally:
            model.zero_grad(set_to_none=True)

    return step


def probe_model(model: torch.nn.Module, policy, input_size: Tuple[int, int], num_classes: int, num_boxes: int,
                max_labels: int, budget_bytes: float, batch_sizes: Sequence[int], time_budget_s: float,
                **measure_kwargs) -> List[MemoryProbe]:
    """measure_steps on make_training_step's steps; the model is left as it was (weights, BatchNorm
    statistics, train/eval mode, no gradients) and the probe's data freed."""
    saved_state = copy.deepcopy(model.state_dict())
    was_training = model.training
    model.train()
    try:
        step = make_training_step(model, policy, input_size, num_boxes, max_labels, num_classes)
        return measure_steps(step, policy, budget_bytes, batch_sizes, time_budget_s, **measure_kwargs)
    finally:
        model.load_state_dict(saved_state)
        model.train(was_training)


def autobatch(model: torch.nn.Module, policy, input_size: Tuple[int, int], *, num_classes: int,
              target_fraction: float = 0.8, multiple: int = 8, max_batch: int = 64,
              requested: Optional[int] = None, num_boxes: int = 50, max_labels: int = 120,
              batch_sizes: Optional[Sequence[int]] = None, time_budget_s: float = 60.0,
              optimizer_state_copies: int = 2, train_images: Optional[int] = None,
              min_steps_per_epoch: int = MIN_STEPS_PER_EPOCH, min_batch: int = MIN_BATCH,
              clock: Clock = time.perf_counter) -> BatchDecision:
    """Measure training steps on the policy's device and choose the batch by throughput (or check `requested`).

    train_images: images one device trains on per epoch; with it the batch leaves min_steps_per_epoch steps
    (see step_cap). optimizer_state_copies: parameter-sized buffers the real run adds (SGD momentum, EMA copy).
    time_budget_s bounds the probes; `clock` times them (tests pass a fake).
    """
    limit = int(policy.memory_limit())
    budget = target_fraction * limit
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    fixed_bytes = optimizer_state_copies * param_bytes
    steps_limit = step_cap(train_images, min_steps_per_epoch)
    cap = max_batch if steps_limit is None or steps_limit >= max_batch else steps_limit
    sizes = [size for size in batch_sizes or probe_sizes(round_down_to_multiple(cap, multiple)) if size <= cap]
    timed_steps = TIMED_STEPS
    if requested is not None:
        # checking a given batch needs a line, not a search: two cheap, untimed points are enough
        sizes, timed_steps = sorted({1, 2} | ({requested} if requested <= 2 else set())), 0
    probes = probe_model(model, policy, input_size, num_classes, num_boxes, max_labels,
                         max(budget - fixed_bytes, 0.0), sizes, time_budget_s, multiple=multiple,
                         timed_steps=timed_steps, clock=clock)
    policy.release_cache()
    cap_reason = None if cap == max_batch else f"{min_steps_per_epoch} steps per epoch over {train_images} images"
    decision = choose_batch_size(probes, limit, target_fraction, multiple, cap, requested, fixed_bytes=fixed_bytes,
                                 min_batch=min_batch, cap_reason=cap_reason)
    logger.info("autobatch on {} ({}x{} input):\n{}", policy.kind, input_size[0], input_size[1], decision.table())
    if not decision.fits:
        logger.warning("autobatch: {}; expect out-of-memory recovery to halve it, or pass -b auto", decision.reason)
    else:
        logger.info("autobatch: {}", decision.reason)
    return decision
