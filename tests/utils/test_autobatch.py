"""autobatch: probing, the a + b x batch fit, the throughput choice, the step floor, the OOM and time stops.

Memory and step time follow formulas (a fake memory backend and a fake clock), so no assertion reads real timing.
"""
import pytest
import torch

from tests.conftest import loguru_messages
from yolox.utils.autobatch import (
    MIN_BATCH,
    MIN_GAIN_TO_GROW,
    STEP_FLOOR_MIN_BATCH,
    THROUGHPUT_TOLERANCE,
    TIMED_STEPS,
    MemoryProbe,
    autobatch,
    choose_batch_size,
    fit_memory_line,
    measure_steps,
    probe_sizes,
    round_down_to_multiple,
    step_cap,
)
from yolox.utils.device import build_policy

MIB = 1 << 20


class FakeMemory:
    """A memory backend whose usage the fake training step sets; it fails like the CPU allocator."""

    name = "fake"

    def __init__(self, limit_bytes: int, oom_above: int = None):
        self.limit_bytes = limit_bytes
        self.oom_above = oom_above if oom_above is not None else limit_bytes
        self.current = 0
        self.peak_bytes = 0
        self.releases = 0

    def use(self, nbytes: int) -> None:
        if nbytes > self.oom_above:
            raise RuntimeError(f"DefaultCPUAllocator: can't allocate memory: you tried to allocate {nbytes} bytes.")
        self.current = nbytes
        self.peak_bytes = max(self.peak_bytes, nbytes)

    def allocated(self) -> int:
        return self.current

    driver_allocated = allocated

    def peak(self) -> int:
        return self.peak_bytes

    def reset_peak(self) -> None:
        self.peak_bytes = self.current = 0

    def limit(self) -> int:
        return self.limit_bytes

    def release_cache(self) -> None:
        self.releases += 1

    def synchronize(self) -> None:
        pass


class FakeClock:
    """Seconds that only the fake steps advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class StepFormula:
    """A training step costing intercept + slope x batch bytes and fixed_s + per_image_s x batch seconds."""

    def __init__(self, memory: FakeMemory, clock: FakeClock, intercept: int = 200 * MIB, slope: int = 50 * MIB,
                 fixed_s: float = 0.02, per_image_s: float = 0.001):
        self.memory, self.clock = memory, clock
        self.intercept, self.slope, self.fixed_s, self.per_image_s = intercept, slope, fixed_s, per_image_s
        self.calls = []

    def __call__(self, batch_size: int) -> None:
        self.calls.append(batch_size)
        self.memory.use(self.intercept + self.slope * batch_size)
        self.clock.advance(self.fixed_s + self.per_image_s * batch_size)

    def rate(self, batch_size: int) -> float:
        return batch_size / (self.fixed_s + self.per_image_s * batch_size)

    def sizes_run(self) -> list:
        return sorted(set(self.calls))


def fake_setup(limit_mib: int, oom_above_mib: int = None, **formula):
    memory = FakeMemory(limit_mib * MIB, None if oom_above_mib is None else oom_above_mib * MIB)
    clock = FakeClock()
    return build_policy("cpu", memory=memory), StepFormula(memory, clock, **formula), clock


def smallest_near_best(sizes, rate) -> int:
    """The rule, stated independently: the smallest size within the tolerance of the best rate."""
    best = max(rate(size) for size in sizes)
    return min(size for size in sizes if rate(size) >= (1 - THROUGHPUT_TOLERANCE) * best)


def test_fit_recovers_a_plus_b_batch():
    intercept, slope = fit_memory_line([1, 2, 4, 8], [100 + 30 * b for b in (1, 2, 4, 8)])
    assert intercept == pytest.approx(100)
    assert slope == pytest.approx(30)


@pytest.mark.parametrize("raw, multiple, expected", [(37, 8, 32), (64, 8, 64), (7, 8, 4), (3, 8, 2), (1, 8, 1),
                                                     (13, 4, 12), (0, 8, 0)])
def test_rounding(raw, multiple, expected):
    assert round_down_to_multiple(raw, multiple) == expected


def test_probe_sizes_double_up_to_the_cap():
    assert probe_sizes(64) == [1, 2, 4, 8, 16, 32, 64]
    assert probe_sizes(24) == [1, 2, 4, 8, 16, 24]
    assert probe_sizes(1) == [1]


def test_each_size_is_warmed_up_then_timed_and_its_rate_follows_the_formula():
    policy, step, clock = fake_setup(100_000)
    probes = measure_steps(step, policy, 80_000 * MIB, [1, 2, 4], clock=clock, min_gain=-1.0)
    assert step.calls == [size for size in (1, 2, 4) for _ in range(1 + TIMED_STEPS)]
    for probe in probes:
        assert probe.peak_bytes == step.intercept + step.slope * probe.batch_size
        assert probe.images_per_second == pytest.approx(step.rate(probe.batch_size))


def test_a_large_gpu_gets_the_smallest_batch_near_the_best_throughput_not_8():
    policy, step, clock = fake_setup(1_000_000)
    probes = measure_steps(step, policy, 800_000 * MIB, probe_sizes(256), clock=clock)
    assert step.sizes_run() == probe_sizes(256)          # every doubling still gained more than 5%
    decision = choose_batch_size(probes, 1_000_000 * MIB, max_batch=256)
    expected = smallest_near_best(probe_sizes(256), step.rate)
    assert decision.batch_size == expected and expected > 16
    assert decision.batch_size < 256                       # the best rate is at 256: the tolerance picked smaller
    assert f"batch {expected}: smallest measured batch within 10%" in decision.reason


def test_probing_stops_once_a_doubling_gains_little():
    policy, step, clock = fake_setup(1_000_000)
    measure_steps(step, policy, 800_000 * MIB, probe_sizes(4096), clock=clock)
    sizes = probe_sizes(4096)
    stop = next(b for a, b in zip(sizes, sizes[1:]) if step.rate(b) < (1 + MIN_GAIN_TO_GROW) * step.rate(a))
    assert step.sizes_run() == [size for size in sizes if size <= stop]
    assert stop < 4096


def test_a_cpu_like_step_stops_after_two_sizes_and_takes_the_batch_floor():
    # no fixed per-step cost: images per second do not grow with the batch
    policy, step, clock = fake_setup(100_000, fixed_s=0.0, per_image_s=0.5)
    probes = measure_steps(step, policy, 80_000 * MIB, probe_sizes(64), clock=clock)
    assert step.sizes_run() == [1, 2]
    decision = choose_batch_size(probes, 100_000 * MIB, max_batch=64)
    assert decision.batch_size == MIN_BATCH and f"floor of {MIN_BATCH}" in decision.reason


def test_the_floor_gives_way_to_memory():
    policy, step, clock = fake_setup(1000, intercept=100 * MIB, slope=150 * MIB, fixed_s=0.0, per_image_s=0.5)
    probes = measure_steps(step, policy, 800 * MIB, [1, 2, 4, 8], clock=clock)
    # (800 - 100) / 150 = 4.67 -> 4 (a power of two below one multiple of 8), below the floor of 8
    assert choose_batch_size(probes, 1000 * MIB, target_fraction=0.8, multiple=8).batch_size == 4


def test_probes_stay_within_the_time_budget():
    policy, step, clock = fake_setup(1_000_000, fixed_s=1.0, per_image_s=0.1)
    probes = measure_steps(step, policy, 800_000 * MIB, probe_sizes(256), time_budget_s=30.0, clock=clock)
    assert clock.now <= 30.0
    assert probes[-1].batch_size < 256 and len(probes) >= 2


def test_untimed_probes_give_the_largest_batch_that_fits():
    probes = [MemoryProbe(b, (200 + 50 * b) * MIB) for b in (1, 2, 4, 8, 16)]
    decision = choose_batch_size(probes, 4000 * MIB, target_fraction=0.8, multiple=8, max_batch=256)
    # (0.8 * 4000 - 200) / 50 = 60 images -> 56 after rounding down to a multiple of 8
    assert decision.batch_size == 56
    assert decision.predicted_bytes(56) <= 0.8 * 4000 * MIB
    assert choose_batch_size(probes, 4000 * MIB, target_fraction=0.5, max_batch=256).batch_size == 32


def test_the_last_probe_is_the_largest_size_that_fits_when_the_next_doubling_would_not():
    policy, step, clock = fake_setup(4000)
    probes = measure_steps(step, policy, 3200 * MIB, probe_sizes(256), clock=clock)
    # 64 would need 200 + 50 x 64 = 3400 MiB > 3200: (3200 - 200) / 50 = 60 -> 56 is measured instead
    assert step.sizes_run() == [1, 2, 4, 8, 16, 32, 56]
    decision = choose_batch_size(probes, 4000 * MIB, max_batch=256)
    assert decision.batch_size == smallest_near_best(step.sizes_run(), step.rate)
    assert decision.predicted_bytes(decision.batch_size) <= 3200 * MIB


def test_growth_stops_at_first_oom_and_releases_cache():
    policy, step, clock = fake_setup(10_000, oom_above_mib=900, intercept=100 * MIB, slope=100 * MIB)
    probes = measure_steps(step, policy, 8000 * MIB, [1, 2, 4, 8, 16, 32], clock=clock)
    assert step.sizes_run() == [1, 2, 4, 8, 16]        # 16 needs 1700 MiB: OOM, 32 is never tried
    assert [p.peak_bytes is None for p in probes] == [False, False, False, False, True]
    assert policy.memory.releases >= len(probes) + 1   # before every probe, after the OOM and at the end
    decision = choose_batch_size(probes, 10_000 * MIB, max_batch=64)
    assert decision.batch_size == 8 and "out of memory at batch 16" in decision.reason


def test_non_oom_errors_propagate():
    policy = build_policy("cpu", memory=FakeMemory(1000 * MIB))

    def broken(batch_size):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        measure_steps(broken, policy, 800 * MIB, [1, 2])


def test_oom_at_batch_one_is_a_clear_error():
    with pytest.raises(RuntimeError, match="out of memory at batch 1.*grad-ckpt"):
        choose_batch_size([MemoryProbe(1, None)], 1000 * MIB)


def test_requested_batch_is_kept_and_flagged_when_it_does_not_fit():
    probes = [MemoryProbe(1, 300 * MIB), MemoryProbe(2, 500 * MIB)]
    too_big = choose_batch_size(probes, 1000 * MIB, target_fraction=0.8, requested=16)
    assert too_big.batch_size == 16 and not too_big.fits and "EXCEEDS" in too_big.reason
    fine = choose_batch_size(probes, 1000 * MIB, target_fraction=0.8, requested=2)
    assert fine.batch_size == 2 and fine.fits


@pytest.mark.parametrize("train_images, expected", [(None, None), (64, STEP_FLOOR_MIN_BATCH), (10, 10),
                                                    (1000, 125)])
def test_step_cap_keeps_steps_per_epoch_but_not_below_16(train_images, expected):
    assert step_cap(train_images, min_steps_per_epoch=8) == expected


class FormulaDetector(torch.nn.Module):
    """Returns the loss dict like YOLOX in train mode; memory and time follow a StepFormula per image."""

    def __init__(self, formula: StepFormula):
        super().__init__()
        self.formula = formula
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, images, labels=None):
        self.formula(images.shape[0])
        return {"total_loss": self.bn(self.conv(images / 255.0)).square().mean() + 0 * labels.sum()}


@pytest.mark.parametrize("train_images", [64, 200])
def test_autobatch_keeps_the_step_floor_where_it_leaves_16_or_more(train_images):
    policy, step, clock = fake_setup(1_000_000)
    decision = autobatch(FormulaDetector(step), policy, (16, 16), num_classes=1, max_batch=256, num_boxes=3,
                         max_labels=5, train_images=train_images, clock=clock)
    cap = round_down_to_multiple(step_cap(train_images), 8)
    assert max(step.sizes_run()) == cap >= STEP_FLOOR_MIN_BATCH
    assert decision.batch_size == smallest_near_best(step.sizes_run(), step.rate)
    assert f"8 steps per epoch over {train_images} images" in decision.reason


def test_autobatch_logs_the_throughput_table_and_the_reason():
    policy, step, clock = fake_setup(1_000_000)
    with loguru_messages("INFO") as messages:
        decision = autobatch(FormulaDetector(step), policy, (16, 16), num_classes=1, max_batch=64, num_boxes=3,
                             max_labels=5, clock=clock)
    table = next(message for message in messages if message.startswith("autobatch on cpu"))
    assert "img/s" in table and "peak MiB" in table
    assert f"{step.rate(decision.batch_size):.1f}" in table
    assert any(message == f"autobatch: {decision.reason}" for message in messages)


def test_autobatch_checks_a_requested_batch_with_two_untimed_steps():
    policy, step, clock = fake_setup(1_000_000)
    decision = autobatch(FormulaDetector(step), policy, (16, 16), num_classes=1, requested=48, num_boxes=3,
                         max_labels=5, clock=clock)
    assert step.calls == [1, 2] and decision.batch_size == 48 and decision.fits


def test_autobatch_on_cpu_measures_real_steps_and_restores_the_model():
    model = FormulaDetector(StepFormula(FakeMemory(1 << 40), FakeClock())).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy = build_policy("cpu")
    decision = autobatch(model, policy, (32, 32), num_classes=1, max_batch=8, num_boxes=3, max_labels=5,
                         batch_sizes=(1, 2, 4), time_budget_s=30)
    assert [p.batch_size for p in decision.probes][:2] == [1, 2]
    assert all(p.peak_bytes and p.peak_bytes > 0 and p.seconds > 0 for p in decision.probes)
    assert 1 <= decision.batch_size <= 8
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert "img/s" in decision.table()
