"""autobatch: probing, the a + b x batch fit, rounding, the target fraction and the OOM stop."""
import pytest
import torch

from yolox.utils.autobatch import (
    MemoryProbe,
    autobatch,
    choose_batch_size,
    fit_memory_line,
    measure_step_memory,
    round_down_to_multiple,
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


def linear_step(memory: FakeMemory, intercept: int, slope: int, calls: list):
    def step(batch_size: int) -> None:
        calls.append(batch_size)
        memory.use(intercept + slope * batch_size)
    return step


def test_fit_recovers_a_plus_b_batch():
    intercept, slope = fit_memory_line([1, 2, 4, 8], [100 + 30 * b for b in (1, 2, 4, 8)])
    assert intercept == pytest.approx(100)
    assert slope == pytest.approx(30)


@pytest.mark.parametrize("raw, multiple, expected", [(37, 8, 32), (64, 8, 64), (7, 8, 4), (3, 8, 2), (1, 8, 1),
                                                     (13, 4, 12), (0, 8, 0)])
def test_rounding(raw, multiple, expected):
    assert round_down_to_multiple(raw, multiple) == expected


def test_known_line_gives_expected_batch_and_respects_target_fraction():
    intercept, slope, limit = 200 * MIB, 50 * MIB, 4000 * MIB
    memory = FakeMemory(limit)
    policy = build_policy("cpu", memory=memory)
    probes = measure_step_memory(linear_step(memory, intercept, slope, []), policy, 0.8 * limit, [1, 2, 4, 8, 16])
    decision = choose_batch_size(probes, limit, target_fraction=0.8, multiple=8, max_batch=256)
    # (0.8 * 4000 - 200) / 50 = 60 images -> 56 after rounding down to a multiple of 8
    assert decision.batch_size == 56
    assert decision.predicted_bytes(56) <= 0.8 * limit
    smaller = choose_batch_size(probes, limit, target_fraction=0.5, multiple=8, max_batch=256)
    # (0.5 * 4000 - 200) / 50 = 36 -> 32
    assert smaller.batch_size == 32
    assert "fit" in decision.reason and "56" in decision.reason


def test_tiny_memory_allows_smaller_multiples():
    limit = 1000 * MIB
    memory = FakeMemory(limit)
    policy = build_policy("cpu", memory=memory)
    probes = measure_step_memory(linear_step(memory, 100 * MIB, 150 * MIB, []), policy, 0.8 * limit, [1, 2, 4, 8])
    decision = choose_batch_size(probes, limit, target_fraction=0.8, multiple=8)
    # (800 - 100) / 150 = 4.67 -> 4 (a power of two below one multiple of 8)
    assert decision.batch_size == 4


def test_growth_stops_at_first_oom_and_releases_cache():
    limit = 10_000 * MIB
    memory = FakeMemory(limit, oom_above=900 * MIB)   # the device fails well before the nominal limit
    policy = build_policy("cpu", memory=memory)
    calls = []
    probes = measure_step_memory(linear_step(memory, 100 * MIB, 100 * MIB, calls), policy, 0.8 * limit,
                                 [1, 2, 4, 8, 16, 32])
    assert calls == [1, 2, 4, 8, 16]                 # 16 needs 1700 MiB: OOM, 32 is never tried
    assert [p.peak_bytes is None for p in probes] == [False, False, False, False, True]
    assert memory.releases >= len(calls) + 1        # before every probe, after the OOM and at the end


def test_oom_probe_caps_choice_below_failing_batch():
    limit = 10_000 * MIB
    memory = FakeMemory(limit, oom_above=700 * MIB)
    policy = build_policy("cpu", memory=memory)
    calls = []
    probes = measure_step_memory(linear_step(memory, 100 * MIB, 100 * MIB, calls), policy, 0.8 * limit,
                                 [1, 2, 4, 8, 16])
    assert calls == [1, 2, 4, 8]                     # 8 needs 900 MiB > 700: OOM, no further growth
    assert probes[-1] == MemoryProbe(8, None, probes[-1].seconds)
    decision = choose_batch_size(probes, limit, target_fraction=0.8, multiple=8, max_batch=64)
    assert decision.batch_size == 4
    assert "out of memory at batch 8" in decision.reason


def test_growth_stops_when_next_size_is_predicted_over_budget():
    limit = 1000 * MIB
    memory = FakeMemory(limit)
    policy = build_policy("cpu", memory=memory)
    calls = []
    measure_step_memory(linear_step(memory, 100 * MIB, 60 * MIB, calls), policy, 0.8 * limit, [1, 2, 4, 8, 16, 32])
    assert calls == [1, 2, 4, 8]                     # 16 would need 1060 MiB > 800 MiB budget


def test_non_oom_errors_propagate():
    memory = FakeMemory(1000 * MIB)
    policy = build_policy("cpu", memory=memory)

    def broken(batch_size):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        measure_step_memory(broken, policy, 800 * MIB, [1, 2])


def test_oom_at_batch_one_is_a_clear_error():
    with pytest.raises(RuntimeError, match="out of memory at batch 1.*grad-ckpt"):
        choose_batch_size([MemoryProbe(1, None)], 1000 * MIB)


def test_requested_batch_is_kept_and_flagged_when_it_does_not_fit():
    probes = [MemoryProbe(1, 300 * MIB), MemoryProbe(2, 500 * MIB)]
    too_big = choose_batch_size(probes, 1000 * MIB, target_fraction=0.8, requested=16)
    assert too_big.batch_size == 16 and not too_big.fits and "EXCEEDS" in too_big.reason
    fine = choose_batch_size(probes, 1000 * MIB, target_fraction=0.8, requested=2)
    assert fine.batch_size == 2 and fine.fits


class TinyDetector(torch.nn.Module):
    """Returns the loss dict like YOLOX in train mode; has BatchNorm so state restoration is checked."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, images, labels=None):
        out = self.bn(self.conv(images / 255.0))
        return {"total_loss": out.square().mean() + 0 * labels.sum()}


def test_autobatch_on_cpu_measures_real_steps_and_restores_the_model():
    model = TinyDetector().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy = build_policy("cpu")
    decision = autobatch(model, policy, (32, 32), num_classes=1, max_batch=8, num_boxes=3, max_labels=5,
                         batch_sizes=(1, 2, 4), time_budget_s=30)
    assert [p.batch_size for p in decision.probes] == [1, 2, 4]
    assert all(p.peak_bytes and p.peak_bytes > 0 for p in decision.probes)
    assert decision.limit_bytes == policy.memory_limit() or decision.limit_bytes > 0
    assert 1 <= decision.batch_size <= 8
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in model.parameters())
    assert "batch" in decision.table()
