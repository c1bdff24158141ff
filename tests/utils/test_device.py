"""DevicePolicy decisions as docs/devices.md gives them, device selection errors, OOM recognition, the AMP probe."""
import dataclasses
import functools
import inspect
import os
import random
import sys

import numpy as np
import pytest
import torch
from loguru import logger

from tests.conftest import loguru_messages
from yolox.utils import device as device_mod
from yolox.utils.device import (
    DeviceUnavailableError,
    MemoryBackend,
    build_policy,
    device_count,
    probe_mps_amp,
    select_device,
)

@pytest.fixture
def no_cuda(monkeypatch):
    """Every public torch.cuda function raises: a decision that reaches for CUDA fails loudly."""
    def make_raiser(name, original):
        @functools.wraps(original)  # keeps attributes torch's own introspection reads (e.g. __wrapped__)
        def raiser(*args, **kwargs):
            raise AssertionError(f"torch.cuda.{name} called in a test that simulates a machine without CUDA")
        return raiser

    for name, value in vars(torch.cuda).items():
        if name.startswith("_"):
            continue
        if inspect.isfunction(value) or inspect.isbuiltin(value):
            monkeypatch.setattr(torch.cuda, name, make_raiser(name, value))
    return monkeypatch


@pytest.fixture
def warnings_seen():
    """Messages loguru emits at WARNING and above while the test runs."""
    with loguru_messages("WARNING") as messages:
        yield messages


class FakeMemory(MemoryBackend):
    """Scripted memory figures; records cache releases and synchronisations."""

    name = "fake"

    def __init__(self, allocated=100 * 2 ** 20, peak=300 * 2 ** 20, limit=1000 * 2 ** 20):
        super().__init__()
        self._allocated, self._peak_value, self._limit = allocated, peak, limit
        self.released = self.synced = self.resets = 0

    def allocated(self):
        return self._allocated

    def peak(self):
        return self._peak_value

    def reset_peak(self):
        self.resets += 1

    def limit(self):
        return self._limit

    def release_cache(self):
        self.released += 1

    def synchronize(self):
        self.synced += 1


def passing_probe(dtype):
    return True, f"{dtype} fine"


def failing_probe(dtype):
    return False, "float16 probe on mps was killed by SIGABRT (hard abort): original module failed verification"


# ---------------------------------------------------------------------------------------------------------
# Decisions per device kind (docs/devices.md)
# ---------------------------------------------------------------------------------------------------------
EXPECTED_DEFAULTS = {
    # docs/devices.md: pin only for CUDA; AMP off on MPS by default; one MPS device and no NCCL; channels_last and
    # compile harm MPS training; the MPS cache grows across batches; MPS has no float64.
    "cuda": dict(amp_dtype=None, grad_scaler=False, pin_memory=True, non_blocking=True, prefetch_stream=True,
                 dist_backend="nccl", cudnn_benchmark=False, compile_model=False, channels_last=True,
                 cache_release_every=0, downcast_float64=False, batch_augment=True),
    "mps": dict(amp_dtype=None, grad_scaler=False, pin_memory=False, non_blocking=False, prefetch_stream=False,
                dist_backend=None, cudnn_benchmark=False, compile_model=False, channels_last=False,
                cache_release_every=10, downcast_float64=True, mps_fallback=False, batch_augment=False),
    "cpu": dict(amp_dtype=None, grad_scaler=False, pin_memory=False, non_blocking=False, prefetch_stream=False,
                dist_backend="gloo", cudnn_benchmark=False, compile_model=False, channels_last=True,
                cache_release_every=0, downcast_float64=False, batch_augment=False),
}


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_default_decisions_match_devices_spec(no_cuda, monkeypatch, kind):
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    policy = build_policy(kind, tensors_on="cpu", amp_probe=failing_probe)
    assert policy.kind == kind and policy.device == torch.device("cpu")
    assert policy.simulated == (kind != "cpu")
    for name, expected in EXPECTED_DEFAULTS[kind].items():
        assert getattr(policy, name) == expected, name
    assert policy.warnings == ()


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_every_decision_has_a_reason_that_describe_logs(no_cuda, kind):
    policy = build_policy(kind, tensors_on="cpu")
    lines = policy.describe()
    assert len(lines) == len(device_mod.DECISIONS)
    for name, line in zip(device_mod.DECISIONS, lines):
        reason = policy.reasons[name]
        assert reason.strip() and "\n" not in reason
        assert line.startswith(f"{name} = ") and line.endswith(f"({reason})")

    logged = []
    sink_id = logger.add(lambda message: logged.append(message.record["message"]), level="INFO")
    try:
        policy.log_decisions()
    finally:
        logger.remove(sink_id)
    assert all(any(policy.reasons[name] in message for message in logged) for name in device_mod.DECISIONS)


def test_policy_is_frozen_and_refuses_decisions_without_reason(no_cuda):
    policy = build_policy("cpu")
    assert repr(policy) == "DevicePolicy(cpu rules, tensors on cpu, fp32)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.pin_memory = True
    reasons = dict(policy.reasons, pin_memory=" ")
    with pytest.raises(ValueError, match="pin_memory"):
        dataclasses.replace(policy, reasons=reasons)


# ---- AMP ----------------------------------------------------------------------------------------------------
def test_cuda_fp16_uses_float16_with_scaler(no_cuda):
    policy = build_policy("cuda", fp16=True, tensors_on="cpu")
    assert policy.amp_dtype == torch.float16 and policy.grad_scaler
    assert policy.make_grad_scaler().is_enabled()


def test_cuda_bf16_needs_no_scaler(no_cuda):
    policy = build_policy("cuda", bf16=True, tensors_on="cpu")
    assert policy.amp_dtype == torch.bfloat16 and not policy.grad_scaler


def test_cuda_bf16_unsupported_falls_back_to_fp16_with_warning(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    decisions = device_mod.decisions._Decisions()
    device_mod.decisions._decide_amp_cuda(decisions, torch.device("cuda", 0), fp16=False, bf16=True)
    assert decisions.values == {"amp_dtype": torch.float16, "grad_scaler": True}
    assert len(decisions.warnings) == 1 and "bf16" in decisions.warnings[0]


def test_mps_fp16_with_passing_probe_uses_fp16_and_scaler(no_cuda):
    probed = []
    policy = build_policy("mps", fp16=True, tensors_on="cpu",
                          amp_probe=lambda dtype: probed.append(dtype) or (True, "ok"))
    assert probed == [torch.float16]
    assert policy.amp_dtype == torch.float16 and policy.grad_scaler


def test_mps_fp16_with_failing_probe_is_fp32_with_one_warning(no_cuda, warnings_seen):
    policy = build_policy("mps", fp16=True, tensors_on="cpu", amp_probe=failing_probe)
    assert policy.amp_dtype is None and not policy.grad_scaler
    assert len(warnings_seen) == 1 and "SIGABRT" in warnings_seen[0] and "fp32" in warnings_seen[0]
    assert "probe failed" in policy.reasons["amp_dtype"]
    assert not policy.make_grad_scaler().is_enabled()


@pytest.mark.slow
def test_mps_fp16_with_the_real_probe_here_is_fp32(no_cuda, warnings_seen):
    """This machine has no MPS, so the default probe's child fails and the policy stays fp32."""
    policy = build_policy("mps", fp16=True, tensors_on="cpu")
    assert policy.amp_dtype is None and len(warnings_seen) == 1


def test_mps_bf16_with_passing_probe_has_no_scaler(no_cuda):
    policy = build_policy("mps", bf16=True, tensors_on="cpu", amp_probe=passing_probe)
    assert policy.amp_dtype == torch.bfloat16 and not policy.grad_scaler


def test_mps_fp16_refused_before_torch_2_8_without_probing(no_cuda, monkeypatch, warnings_seen):
    monkeypatch.setattr(torch, "__version__", "2.7.1")
    policy = build_policy("mps", fp16=True, tensors_on="cpu", amp_probe=lambda dtype: pytest.fail("probed"))
    assert policy.amp_dtype is None
    assert len(warnings_seen) == 1 and "2.8" in warnings_seen[0]


def test_cpu_amp_only_bf16_when_asked(no_cuda, warnings_seen):
    assert build_policy("cpu", bf16=True).amp_dtype == torch.bfloat16
    assert warnings_seen == []
    fp16_policy = build_policy("cpu", fp16=True)
    assert fp16_policy.amp_dtype is None and not fp16_policy.grad_scaler
    assert len(warnings_seen) == 1 and "bf16" in warnings_seen[0]


def test_autocast_follows_policy_dtype(no_cuda):
    layer = torch.nn.Linear(4, 4)
    inputs = torch.randn(2, 4)
    with build_policy("cpu", bf16=True).autocast():
        assert layer(inputs).dtype == torch.bfloat16
    with build_policy("mps", tensors_on="cpu").autocast():
        assert layer(inputs).dtype == torch.float32


# ---- loaders, placement ------------------------------------------------------------------------------------
def test_loader_kwargs_per_kind(no_cuda):
    cuda = build_policy("cuda", tensors_on="cpu").loader_kwargs(8)
    assert cuda == {"num_workers": min(8, os.cpu_count()), "pin_memory": True, "persistent_workers": True}
    assert build_policy("mps", tensors_on="cpu").loader_kwargs(8) == {
        "num_workers": 4, "pin_memory": False, "persistent_workers": True}
    assert build_policy("cpu").loader_kwargs(8)["num_workers"] == 2
    assert build_policy("mps", tensors_on="cpu").loader_kwargs(0) == {
        "num_workers": 0, "pin_memory": False, "persistent_workers": False}
    explicit = build_policy("mps", tensors_on="cpu", num_workers=6)
    assert explicit.loader_kwargs(8)["num_workers"] == 6 and "explicit" in explicit.reasons["num_workers"]


def test_to_moves_nested_batches_and_downcasts_float64_on_mps(no_cuda):
    mps = build_policy("mps", tensors_on="cpu")
    batch = {"images": torch.zeros(1, 3, dtype=torch.float64), "meta": [torch.ones(2, dtype=torch.int64), "id"]}
    moved = mps.to(batch)
    assert moved["images"].dtype == torch.float32 and moved["meta"][0].dtype == torch.int64
    assert moved["meta"][1] == "id"
    assert mps.to(torch.nn.Linear(2, 2).double()).weight.dtype == torch.float32
    assert build_policy("cpu").to(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64


# ---- distributed, kernels, cache ---------------------------------------------------------------------------
def test_mps_refuses_multi_process_training(no_cuda):
    with pytest.raises(DeviceUnavailableError, match="one MPS device"):
        build_policy("mps", tensors_on="cpu", world_size=2)
    with pytest.raises(DeviceUnavailableError, match="2 training processes"):
        build_policy("mps", tensors_on="cpu").check_world_size(2)
    build_policy("cpu").check_world_size(2)


def test_channels_last_and_compile_stay_off_for_mps_training(no_cuda, warnings_seen):
    mps = build_policy("mps", tensors_on="cpu", channels_last=True)
    assert not mps.channels_last and len(warnings_seen) == 1 and "convolution_backward" in warnings_seen[0]
    assert build_policy("cuda", tensors_on="cpu", channels_last=True).channels_last
    assert "measured on one H100" in build_policy("cuda", tensors_on="cpu").reasons["channels_last"]


def test_cudnn_flags_follow_policy(no_cuda, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    assert "multi-scale" in build_policy("cuda", tensors_on="cpu").reasons["cudnn_benchmark"]
    build_policy("cuda", tensors_on="cpu", cudnn_benchmark=True).configure_backends()
    assert torch.backends.cudnn.benchmark
    build_policy("cuda", tensors_on="cpu").seed_everything(3, deterministic=True)
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    # the trainer configures after the seeding: an explicit autotune request must not undo determinism
    build_policy("cuda", tensors_on="cpu", cudnn_benchmark=True).configure_backends()
    assert not torch.backends.cudnn.benchmark
    assert not build_policy("cuda", tensors_on="cpu").cudnn_benchmark


def test_cuda_loader_workers_have_a_floor_unless_set(no_cuda, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    policy = build_policy("cuda", tensors_on="cpu")
    assert policy.loader_kwargs(4)["num_workers"] == 14 and "docs/devices.md#loader-workers" in policy.reasons["worker_floor"]
    assert build_policy("cuda", tensors_on="cpu", num_workers=2).loader_kwargs(4)["num_workers"] == 2
    assert build_policy("cpu").loader_kwargs(1)["num_workers"] == 1
    seeded = build_policy("cuda", tensors_on="cpu", deterministic=True)
    assert not seeded.cudnn_benchmark and "deterministic" in seeded.reasons["cudnn_benchmark"]


def test_mps_fallback_follows_the_environment(no_cuda, monkeypatch):
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    assert build_policy("mps", tensors_on="cpu").mps_fallback
    assert not build_policy("cpu").mps_fallback
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK")
    unset = build_policy("mps", tensors_on="cpu")
    assert not unset.mps_fallback and "NotImplementedError" in unset.reasons["mps_fallback"]


def test_cache_release_cadence(no_cuda):
    mps = build_policy("mps", tensors_on="cpu")
    assert [i for i in range(1, 31) if mps.should_release_cache(i)] == [10, 20, 30]
    assert build_policy("mps", tensors_on="cpu", cache_release_every=25).cache_release_every == 25
    cuda = build_policy("cuda", tensors_on="cpu")
    assert not any(cuda.should_release_cache(i) for i in range(1, 100))


# ---- memory -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, label", [("cuda", "gpu mem: 300Mb"), ("mps", "mps mem: 100Mb"), ("cpu", "rss: 0.10Gb")])
def test_memory_queries_go_through_the_backend(no_cuda, kind, label):
    fake = FakeMemory()
    policy = build_policy(kind, tensors_on="cpu", memory=fake)
    figures = (policy.memory_allocated(), policy.peak_memory(), policy.memory_limit())
    assert figures == (100 * 2 ** 20, 300 * 2 ** 20, 1000 * 2 ** 20)
    policy.reset_peak_memory()
    policy.release_cache()
    policy.synchronize()
    assert (fake.resets, fake.released, fake.synced) == (1, 1, 1)
    assert label in policy.memory_line()
    assert "injected" in policy.reasons["memory"]


def test_mps_memory_samples_peak_and_applies_watermark(monkeypatch):
    driver_values = iter([50, 400, 120, 130])
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: next(driver_values))
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 40)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 1000)
    memory = device_mod.MpsMemory()
    assert memory.allocated() == 40 and memory.driver_allocated() == 400
    assert memory.peak() == 400
    memory.reset_peak()
    assert memory.peak() == 130
    monkeypatch.setenv("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "1.5")
    assert memory.limit() == 1500
    monkeypatch.delenv("PYTORCH_MPS_HIGH_WATERMARK_RATIO")
    assert memory.limit() == 1700


def test_cuda_memory_reads_the_cuda_allocator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 11)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: 22)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: type("P", (), {"total_memory": 33}))
    memory = device_mod.memory_backend_for(torch.device("cuda", 0))
    assert (memory.allocated(), memory.peak(), memory.limit()) == (11, 22, 33)


def test_cpu_memory_is_process_rss_against_available_ram(no_cuda):
    policy = build_policy("cpu")
    assert policy.memory_allocated() > 0 and policy.peak_memory() >= policy.memory_allocated()
    assert policy.memory_limit() > 0


# ---- OOM ----------------------------------------------------------------------------------------------------
OOM_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total capacity)"),
    RuntimeError("MPS backend out of memory (MPS allocated: 45.59 GiB, other allocations: 1.2 GiB, "
                 "max allowed: 47.74 GiB). Tried to allocate 256 MiB on private pool."),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 68719476736 bytes."),
]
NOT_OOM_ERRORS = [
    RuntimeError("Expected all tensors to be on the same device"),
    RuntimeError("shape '[2, 3]' is invalid for input of size 7"),
    ValueError("CUDA out of memory"),
]


@pytest.mark.parametrize("kind", ["cuda", "mps", "cpu"])
def test_is_oom_recognises_every_device_message(no_cuda, kind):
    policy = build_policy(kind, tensors_on="cpu")
    assert all(policy.is_oom(error) for error in OOM_ERRORS)
    assert not any(policy.is_oom(error) for error in NOT_OOM_ERRORS)


def test_is_oom_follows_the_cause_chain(no_cuda):
    try:
        try:
            raise OOM_ERRORS[2]
        except RuntimeError as inner:
            raise RuntimeError("Caught RuntimeError in replica 0") from inner
    except RuntimeError as outer:
        assert build_policy("cpu").is_oom(outer)


# ---- seeding ------------------------------------------------------------------------------------------------
def test_seed_everything_repeats_python_numpy_and_torch_draws(no_cuda):
    policy = build_policy("mps", tensors_on="cpu")

    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    policy.seed_everything("42")
    first = draws()
    policy.seed_everything(42)
    assert draws() == first
    policy.seed_everything(43)
    assert draws() != first


# ---------------------------------------------------------------------------------------------------------
# Device selection
# ---------------------------------------------------------------------------------------------------------
def test_select_mps_here_says_torch_was_built_without_mps(no_cuda):
    assert not torch.backends.mps.is_built()
    with pytest.raises(DeviceUnavailableError, match=r"built without MPS support \(torch.backends.mps.is_built"):
        select_device("mps")
    assert device_count("mps") == 0


def test_select_mps_says_macos_when_built_but_unavailable(no_cuda, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="macOS 12.3"):
        select_device("mps")


def test_select_cuda_without_driver_says_why(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="no CUDA device is usable"):
        select_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="no CUDA device is usable"):
        select_device("gpu")


def test_select_cuda_on_a_cpu_only_build_says_why(no_cuda, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    with pytest.raises(DeviceUnavailableError, match=r"no CUDA support \(torch.version.cuda is None\)"):
        select_device("cuda:0")
    assert device_count("cuda") == 0


def fake_gpus(monkeypatch, count):
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_select_cuda_index_out_of_range(monkeypatch):
    fake_gpus(monkeypatch, 2)
    with pytest.raises(DeviceUnavailableError, match="index 7 out of range, 2 CUDA device"):
        select_device("cuda:7")
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert select_device("gpu") == torch.device("cuda", 0)
    assert select_device("auto").type == "cuda"


def test_cuda_rank_picks_its_gpu(monkeypatch):
    fake_gpus(monkeypatch, 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(device_mod.decisions, "memory_backend_for", lambda device: FakeMemory())
    assert build_policy("cuda", local_rank=1, world_size=2).device == torch.device("cuda", 1)
    with pytest.raises(DeviceUnavailableError, match="out of range"):
        build_policy("cuda", local_rank=2, world_size=3)


def test_auto_order_is_cuda_then_mps_then_cpu(no_cuda, monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    assert select_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device("auto") == torch.device("mps")
    assert select_device(" MPS ") == torch.device("mps")
    with pytest.raises(DeviceUnavailableError, match="single MPS device"):
        select_device("mps:1")


@pytest.mark.parametrize("text", ["tpu", "cuda:x", "cpu:1", "cuda:-1"])
def test_unknown_device_strings_are_rejected(text):
    with pytest.raises(ValueError, match="device"):
        select_device(text)


# ---------------------------------------------------------------------------------------------------------
# The AMP probe machinery (child process)
# ---------------------------------------------------------------------------------------------------------
def test_probe_reports_an_aborting_child_as_failure():
    ok, reason = probe_mps_amp(device="cpu", script="import os, sys; sys.stderr.write('failed verification\\n'); "
                                                   "sys.stderr.flush(); os.abort()")
    assert not ok
    assert "SIGABRT" in reason and "hard abort" in reason and "failed verification" in reason


def test_probe_reports_a_failing_child_with_its_last_error_line():
    ok, reason = probe_mps_amp(device="cpu", script="import sys; sys.exit('gradients silently zero')")
    assert not ok and "exit 1" in reason and "gradients silently zero" in reason


def test_probe_reports_a_hanging_child_as_timeout():
    ok, reason = probe_mps_amp(device="cpu", timeout_s=0.5, script="import time; time.sleep(30)")
    assert not ok and "did not finish" in reason


def test_probe_passes_the_device_and_dtype_to_the_child():
    ok, reason = probe_mps_amp(torch.bfloat16, device="cpu", script="import sys; print('args', *sys.argv[1:])")
    assert ok and "args cpu bfloat16" in reason


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_real_probe_passes_on_cpu(dtype):
    ok, reason = probe_mps_amp(dtype, device="cpu")
    assert ok, reason
    assert "PROBE-OK" in reason



# ---------------------------------------------------------------------------------------------------------
# Device RNG state (exact resume) and the CUDA copy stream
# ---------------------------------------------------------------------------------------------------------
def fake_mps(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


def test_device_rng_state_round_trip_on_mps(no_cuda, monkeypatch):
    fake_mps(monkeypatch)
    generator = {"state": torch.tensor([1, 2, 3], dtype=torch.uint8)}
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda: generator["state"].clone())
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state: generator.update(state=state))
    policy = build_policy("mps", memory=FakeMemory())
    assert policy.device == torch.device("mps") and not policy.simulated
    saved = policy.rng_state()
    generator["state"] = torch.tensor([9, 9, 9], dtype=torch.uint8)
    policy.set_rng_state(saved)
    assert generator["state"].tolist() == [1, 2, 3]


def test_device_rng_state_from_another_device_is_skipped_with_warning(no_cuda, warnings_seen):
    policy = build_policy("cpu")
    assert policy.rng_state() is None
    policy.set_rng_state(None)
    policy.set_rng_state({"type": "cuda", "state": torch.zeros(4, dtype=torch.uint8)})
    assert len(warnings_seen) == 1 and "saved on cuda" in warnings_seen[0]


def test_copy_stream_only_for_cuda_tensors(no_cuda):
    assert device_mod.make_copy_stream(build_policy("cuda", tensors_on="cpu")) is None
    assert device_mod.make_copy_stream(build_policy("cpu")) is None


def test_copy_stream_hands_over_to_the_compute_stream(monkeypatch):
    fake_gpus(monkeypatch, 1)
    monkeypatch.setattr(device_mod.decisions, "memory_backend_for", lambda device: FakeMemory())
    waited = []

    class FakeStream:
        def __init__(self, device=None):
            self.device = device

        def wait_stream(self, other):
            waited.append(other)

    compute = FakeStream()
    monkeypatch.setattr(torch.cuda, "Stream", FakeStream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: compute)
    copy_stream = device_mod.make_copy_stream(build_policy("cuda"))
    assert isinstance(copy_stream.stream, FakeStream)
    copy_stream.hand_over(None, None)
    assert waited == [copy_stream.stream]


# ---------------------------------------------------------------------------------------------------------
# On a real GPU (skipped without CUDA; the coordinator runs these on the GPU machine)
# ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def cuda_policy():
    if device_count("cuda") == 0:
        pytest.skip("needs a CUDA GPU")
    return build_policy("cuda")


def test_copy_stream_on_a_real_gpu(cuda_policy):
    policy = cuda_policy
    copy_stream = device_mod.make_copy_stream(policy)
    host = torch.arange(1 << 16, dtype=torch.float32).pin_memory()
    with copy_stream.context():
        on_device = policy.to(host)
    copy_stream.hand_over(on_device)
    assert torch.equal(on_device.cpu(), host)


def test_cuda_policy_on_a_real_gpu(cuda_policy):
    policy = cuda_policy
    assert policy.device.type == "cuda" and not policy.simulated and policy.memory.name == "cuda"
    policy.set_current_device()
    policy.reset_peak_memory()
    before = policy.memory_allocated()
    block = torch.empty(64 << 20, dtype=torch.uint8, device=policy.device)
    assert policy.memory_allocated() - before >= 64 << 20 and policy.peak_memory() >= 64 << 20
    del block
    policy.release_cache()
    policy.synchronize()
    assert policy.memory_limit() > 1 << 30 and "gpu mem: " in policy.memory_line()


def test_real_cuda_oom_is_recognised(cuda_policy):
    with pytest.raises(RuntimeError) as caught:
        torch.empty(1 << 50, dtype=torch.uint8, device=cuda_policy.device)
    assert cuda_policy.is_oom(caught.value)


def test_cuda_amp_and_rng_on_a_real_gpu(cuda_policy):
    fp16 = build_policy("cuda", fp16=True)
    conv = torch.nn.Conv2d(3, 4, 3).to(fp16.device)
    with fp16.autocast():
        assert conv(torch.randn(1, 3, 8, 8, device=fp16.device)).dtype == torch.float16
    assert fp16.make_grad_scaler().is_enabled()
    bf16 = build_policy("cuda", bf16=True)
    assert bf16.amp_dtype in (torch.bfloat16, torch.float16)
    saved = cuda_policy.rng_state()
    first = torch.rand(4, device=cuda_policy.device)
    cuda_policy.set_rng_state(saved)
    assert torch.equal(torch.rand(4, device=cuda_policy.device), first)


def test_fused_bn_act_for_cpu_training_in_channels_last_only(no_cuda, monkeypatch, warnings_seen):
    monkeypatch.setattr(sys, "platform", "linux")
    cpu = build_policy("cpu")
    assert cpu.fused_bn_act and "measured on a 2-core CPU" in cpu.reasons["fused_bn_act"]
    assert not build_policy("cpu", channels_last=False).fused_bn_act
    assert not build_policy("cpu", fused_bn_act=False).fused_bn_act
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not build_policy("cpu").fused_bn_act
    assert build_policy("cpu", fused_bn_act=True).fused_bn_act
    assert not warnings_seen
    for kind in ("cuda", "mps"):
        policy = build_policy(kind, tensors_on="cpu", amp_probe=failing_probe, fused_bn_act=True)
        assert not policy.fused_bn_act and "CPU kernel" in policy.reasons["fused_bn_act"]
    assert len(warnings_seen) == 2 and all("BatchNorm+SiLU" in w for w in warnings_seen)


def test_fused_optimizer_on_cuda_only_unless_set(no_cuda, monkeypatch):
    cuda = build_policy("cuda", tensors_on="cpu", fp16=True)
    assert cuda.fused_optimizer and "GradScaler" in cuda.reasons["fused_optimizer"]
    assert not build_policy("mps", tensors_on="cpu", amp_probe=failing_probe).fused_optimizer
    assert not build_policy("cpu").fused_optimizer
    assert build_policy("cpu", fused_optimizer=True).fused_optimizer
    assert not build_policy("cuda", tensors_on="cpu", fused_optimizer=False).fused_optimizer
    monkeypatch.setattr(torch, "__version__", "2.2.1")
    old = build_policy("cuda", tensors_on="cpu")
    assert not old.fused_optimizer and "2.3" in old.reasons["fused_optimizer"]


@pytest.mark.parametrize("kind", ["cpu", "mps"])
def test_place_model_puts_weights_in_the_policy_layout(no_cuda, kind):
    policy = build_policy(kind, tensors_on="cpu", amp_probe=failing_probe)
    model = policy.place_model(torch.nn.Conv2d(3, 4, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last) == policy.channels_last
    assert policy.channels_last == (kind == "cpu")


def test_compile_augment_on_real_cuda_with_triton_only(no_cuda):
    from yolox.utils.device.decisions import _decide_compile_augment, _Decisions

    def decided(kind, device, asked=None, triton_found=True):
        out = _Decisions()
        _decide_compile_augment(out, kind, torch.device(device), asked, triton_found)
        return out.values["compile_augment"], out.reasons["compile_augment"]

    assert decided("cuda", "cuda")[0]
    without_triton = decided("cuda", "cuda", triton_found=False)
    assert not without_triton[0] and "Triton" in without_triton[1]
    assert not decided("cuda", "cpu")[0] and "a test" in decided("cuda", "cpu")[1]
    assert not decided("mps", "mps")[0] and not decided("cpu", "cpu")[0]
    assert decided("cpu", "cpu", asked=True) == (True, "set explicitly")
    assert not build_policy("cuda", tensors_on="cpu").compile_augment
    assert not build_policy("mps", tensors_on="cpu", amp_probe=failing_probe).compile_augment
    assert build_policy("cpu", compile_augment=True).compile_augment


def test_compiled_function_falls_back_to_eager_once(no_cuda):
    from yolox.utils.device.policy import CompiledOrEager

    calls = []

    def eager(value):
        calls.append("eager")
        return value + 1

    def broken_compile(value):
        calls.append("compiled")
        raise RuntimeError("no C compiler found\nmore detail")

    with loguru_messages("WARNING") as messages:
        function = CompiledOrEager(eager, broken_compile)
        assert function(1) == 2 and function(2) == 3
    assert calls == ["compiled", "eager", "eager"] and function.fell_back
    assert sum("no C compiler found" in m for m in messages) == 1
    assert CompiledOrEager(eager, lambda value: value * 10)(3) == 30


def test_compile_model_is_asked_for_and_warned_about_on_mps(no_cuda, warnings_seen):
    for kind in ("cuda", "mps", "cpu"):
        policy = build_policy(kind, tensors_on="cpu", amp_probe=failing_probe)
        assert not policy.compile_model and policy.reasons["compile_model"]
    assert "unless asked" in build_policy("cuda", tensors_on="cpu").reasons["compile_model"]
    assert build_policy("cpu", compile_model=True).compile_model
    assert not warnings_seen
    assert build_policy("mps", tensors_on="cpu", amp_probe=failing_probe, compile_model=True).compile_model
    assert len(warnings_seen) == 1 and "Metal" in warnings_seen[0]


def test_the_policy_compiles_a_models_declared_parts_in_place(no_cuda):
    from yolox.models.build import build_yolox

    model = build_yolox(0.33, 0.25, num_classes=1)
    keys = list(model.state_dict())
    assert build_policy("cpu").compile_model_parts(model) == 0 and model.backbone._compiled_call_impl is None
    assert build_policy("cpu", compile_model=True).compile_model_parts(model) == 1
    assert model.backbone._compiled_call_impl is not None and model.head.stems[2]._compiled_call_impl is None
    assert model._compiled_call_impl is None and list(model.state_dict()) == keys  # checkpoints unchanged
    plain = torch.nn.Linear(2, 2)
    assert build_policy("cpu", compile_model=True).compile_model_parts(plain) == 1
    assert plain._compiled_call_impl is not None


def test_compiled_function_passes_out_of_memory_through_without_falling_back(no_cuda):
    from yolox.utils.device.policy import CompiledOrEager

    def out_of_memory(value):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    function = CompiledOrEager(lambda value: value, out_of_memory)
    with pytest.raises(torch.OutOfMemoryError):
        function(1)
    assert not function.fell_back


def test_a_compiled_model_leaves_bn_and_silu_fusion_to_inductor(no_cuda, warnings_seen):
    policy = build_policy("cpu", compile_model=True, fused_bn_act=True)
    assert not policy.fused_bn_act and "Inductor" in policy.reasons["fused_bn_act"]
    assert len(warnings_seen) == 1 and "refused" in warnings_seen[0]


def test_compile_model_is_refused_on_cuda_without_triton(no_cuda):
    from yolox.utils.device.decisions import _Decisions, _decide_compile_model

    def decided(kind, asked, triton_found):
        out = _Decisions()
        _decide_compile_model(out, kind, asked, triton_found)
        return out.values["compile_model"], out.reasons["compile_model"], out.warnings

    refused, reason, warnings = decided("cuda", True, triton_found=False)
    assert not refused and "Triton" in reason and len(warnings) == 1 and "--compile refused" in warnings[0]
    assert decided("cuda", True, triton_found=True)[0] and decided("cpu", True, triton_found=False)[0]
