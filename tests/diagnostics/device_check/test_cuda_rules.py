"""The device check under the CUDA policy's settings (channels_last, fused optimizers, fp16 autocast), run on the CPU
where torch allows: the first H100 run crashed in the fused SGD row, which no MPS-rules test could show."""
import pytest
import torch

from yolox.diagnostics.device_check import CheckPlan, parts, run_checks
from yolox.diagnostics.device_check.bench import Bench
from yolox.diagnostics.device_check.fixture import fixed_model, load_batch, write_crater_set
from yolox.diagnostics.device_check.memory_watch import Schedule
from yolox.utils.device import MemoryBackend, build_policy


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def cuda_rules(**overrides):
    policy = build_policy("cuda", tensors_on="cpu", fp16=None, memory=MemoryBackend(), self_check=False, **overrides)
    assert policy.channels_last and policy.amp_dtype == torch.float16
    return policy


@pytest.fixture(scope="module")
def crater_batch(tmp_path_factory):
    return load_batch(write_crater_set(tmp_path_factory.mktemp("craters")))


def bench_and_grads(policy, batch):
    bench = Bench(policy, fixed_model(batch.images), batch)
    return bench, parts.gradients(bench.cpu_model(train=True), batch.images, batch.labels)


def strict_like_cuda(kernel, calls):
    """`kernel` refusing, as CUDA's fused kernels do (check_fast_path_restrictions), any per-parameter tensor whose
    strides, dtype or device differ from its parameter's (state_steps, one scalar each, are not per-parameter)."""
    def call(params, *lists, **kwargs):
        for tensors in lists:
            for param, tensor in zip(params, tensors):
                if tensor.shape == param.shape and (tensor.stride(), tensor.dtype, tensor.device) != (
                        param.stride(), param.dtype, param.device):
                    raise RuntimeError("Expected at::native::check_fast_path_restrictions(...) to be true")
        calls.append(kernel.__name__)
        return kernel(params, *lists, **kwargs)
    return call


def test_optimizer_rows_step_channels_last_parameters_with_fused_kernels(crater_batch, monkeypatch):
    calls = []
    for name in ("_fused_sgd_", "_fused_adamw_", "_fused_adam_"):
        monkeypatch.setattr(torch, name, strict_like_cuda(getattr(torch, name), calls))
    policy = cuda_rules()
    assert policy.fused_optimizer
    results = parts.optimizer_checks(*bench_and_grads(policy, crater_batch))
    assert [result.verdict for result in results] == ["pass", "pass"], [result.difference for result in results]
    assert set(calls) == {"_fused_sgd_", "_fused_adamw_"}


@pytest.mark.parametrize("zero_start, failed", [(True, []), (False, ["SGD"])])
def test_a_step_after_a_skipped_one_needs_fused_sgds_momentum_to_start_at_zero(crater_batch, monkeypatch,
                                                                                  zero_start, failed):
    """torch's fused SGD (2.11 on an H100, 2.14 on the CPU) leaves the momentum buffers of a step the GradScaler skips
    unset; the trainer starts them at zero, and without that the row fails."""
    if not zero_start:
        monkeypatch.setattr(parts, "start_momentum_at_zero", lambda optimizer: None)
    policy = cuda_rules()
    assert policy.fused_optimizer
    results = parts.skipped_step_checks(*bench_and_grads(policy, crater_batch))
    assert [result.name.split(": ")[1].split(" ")[0] for result in results if not result.passed] == failed
    assert all(result.amp and result.difference is not None for result in results)


def test_the_whole_check_passes_under_cuda_rules():
    policy = cuda_rules()
    plan = CheckPlan(policy=policy, amp_dtype=policy.amp_dtype, schedule=Schedule(sizes=(160, 192), change_every=1,
                                                                                   iterations=4))
    results = run_checks(plan, progress=lambda message: None)
    ran = [result for result in results if result.skipped is None]
    assert len(ran) == len(results) and any(result.amp for result in ran)
    assert [result.name for result in ran if not result.passed] == []
