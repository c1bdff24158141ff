"""DevicePolicy decisions per device kind as docs/devices.md gives them: AMP, loaders, kernels, memory, OOM."""
import dataclasses
import os
import random

import numpy as np
import pytest
import torch
from loguru import logger

from tests.utils.device.conftest import FakeMemory, failing_probe, passing_probe
from yolox.utils import device as device_mod
from yolox.utils.device import (
    DeviceUnavailableError,
    build_policy,
)


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
