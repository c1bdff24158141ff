"""Device selection errors, the AMP probe in a child process, device RNG state and the copy stream."""
import pytest
import torch

from tests.utils.device.conftest import FakeMemory
from yolox.utils import device as device_mod
from yolox.utils.device import (
    DeviceUnavailableError,
    build_policy,
    device_count,
    probe_mps_amp,
    select_device,
)


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
