"""Policy decisions on a real GPU (skipped without CUDA), kernel fusion, fused optimizer and compilation."""
import sys

import pytest
import torch

from tests.conftest import loguru_messages
from tests.utils.device.conftest import failing_probe
from yolox.utils import device as device_mod
from yolox.utils.device import (
    build_policy,
    device_count,
)


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

    def decided(kind, device, asked=None, triton_found=True, budget=None):
        out = _Decisions()
        _decide_compile_augment(out, kind, torch.device(device), asked, triton_found, budget)
        return out.values["compile_augment"], out.reasons["compile_augment"]

    assert decided("cuda", "cuda")[0] and decided("cuda", "cuda", budget=3600)[0]
    short = decided("cuda", "cuda", budget=150)
    assert not short[0] and "--time budget under 10 min" in short[1]
    assert decided("cuda", "cuda", asked=True, budget=150)[0]     # asked for, it is compiled whatever the budget
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


def test_the_guard_reads_its_verdict_late_only_where_the_optimizer_skips_on_the_device(no_cuda):
    cuda = build_policy("cuda", tensors_on="cpu", fp16=True)
    assert cuda.late_guard and "found_inf" in cuda.reasons["late_guard"]
    assert not build_policy("cuda", tensors_on="cpu", fused_optimizer=False).late_guard
    mps = build_policy("mps", tensors_on="cpu", amp_probe=failing_probe)
    assert not mps.late_guard and "cannot skip a step on the device" in mps.reasons["late_guard"]
    assert not build_policy("cpu").late_guard
