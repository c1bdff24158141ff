"""The Trainer under the MPS rules with tensors on the CPU and every torch.cuda function raising."""
import inspect

import pytest
import torch

from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import MemoryBackend, build_policy, make_copy_stream


class CountingMemory(MemoryBackend):
    name = "counting"

    def __init__(self):
        super().__init__()
        self.releases = 0

    def release_cache(self):
        self.releases += 1


@pytest.fixture
def cuda_forbidden(monkeypatch):
    def forbid(name):
        def raising(*args, **kwargs):
            raise AssertionError(f"torch.cuda.{name} called on the MPS path")
        return raising

    import torch._dynamo  # noqa: F401 - torch's own import-time probes of its private cuda helpers

    patched = []
    for name, value in vars(torch.cuda).items():
        if not name.startswith("_") and (inspect.isfunction(value) or inspect.isbuiltin(value)):
            monkeypatch.setattr(torch.cuda, name, forbid(name))
            patched.append(name)
    assert "is_available" in patched and "synchronize" in patched
    return patched


def test_trainer_runs_under_simulated_mps_policy(tiny_exp_file, cuda_forbidden):
    memory = CountingMemory()
    policy = build_policy("mps", tensors_on="cpu", memory=memory, cache_release_every=2)
    assert policy.kind == "mps" and policy.device.type == "cpu"
    exp = get_exp(str(tiny_exp_file))
    trainer = Trainer(exp, train_args(), policy=policy)
    trainer.train()

    assert "device_policy" not in vars(exp)
    assert trainer.amp_training is False and trainer.data_type == torch.float32
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert trainer.scaler.is_enabled() is False
    assert trainer.train_loader.pin_memory is False
    assert not isinstance(trainer.model, torch.nn.parallel.DistributedDataParallel)
    assert make_copy_stream(policy) is None         # no side stream for the prefetcher on MPS
    assert trainer.prefetcher is None               # the loader's workers were stopped when training ended
    total_iters = trainer.max_iter * exp.max_epoch
    assert trainer.cache_releases == total_iters // 2 == memory.releases
    log = open(f"{trainer.file_name}/train_log.txt").read()
    assert "rules: mps, simulated" in log and "mps mem: " in log


def test_mps_default_policy_release_cadence_and_no_multiprocess():
    policy = build_policy("mps", tensors_on="cpu", memory=CountingMemory())
    assert policy.cache_release_every > 0 and policy.dist_backend is None
    assert policy.grad_scaler is False and policy.amp_dtype is None
