"""MPS wrappers for users of the earlier fork: trainer patching, environment setup, thin helpers."""
import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from loguru import logger

from tests.utils.device.conftest import failing_probe, no_cuda, passing_probe, warnings_seen  # noqa: F401 (fixtures)
from yolox.utils import mps_patch
from yolox.utils.device import DeviceUnavailableError


def trainer_like_upstream():
    """The attributes an upstream YOLOX Trainer derives from CUDA at construction, plus a built model."""
    trainer = argparse.Namespace(
        args=argparse.Namespace(fp16=True, device="mps"),
        exp=argparse.Namespace(data_num_workers=8),
        amp_training=True,
        scaler=object(),
        device="cuda:0",
        data_type=torch.float16,
        model=torch.nn.Conv2d(3, 4, 1).double(),
    )
    return trainer


def test_patch_trainer_applies_the_mps_policy(no_cuda, warnings_seen):  # noqa: F811
    trainer = trainer_like_upstream()
    policy = mps_patch.patch_trainer_for_mps(trainer, tensors_on="cpu", amp_probe=failing_probe)
    assert policy.kind == "mps" and trainer.policy is policy and not hasattr(trainer.exp, "device_policy")
    assert trainer.amp_training is False and trainer.args.fp16 is False
    assert trainer.data_type == torch.float32
    assert not trainer.scaler.is_enabled()
    assert trainer.device == "cpu"
    assert trainer.model.weight.dtype == torch.float32
    assert trainer.policy.loader_kwargs(trainer.exp.data_num_workers)["pin_memory"] is False
    assert len(warnings_seen) == 1 and "fp16" in warnings_seen[0]


def test_patch_trainer_keeps_fp16_when_the_probe_passes(no_cuda):  # noqa: F811
    trainer = trainer_like_upstream()
    policy = mps_patch.patch_trainer_for_mps(trainer, tensors_on="cpu", amp_probe=passing_probe)
    assert policy.amp_dtype == torch.float16 and trainer.amp_training and trainer.scaler.is_enabled()


def test_patch_trainer_logs_every_decision_and_warns_about_a_built_loader(no_cuda):  # noqa: F811
    trainer = trainer_like_upstream()
    trainer.amp_training = False
    trainer.train_loader = [1]
    messages = []
    sink_id = logger.add(lambda message: messages.append(message.record["message"]), level="INFO")
    try:
        policy = mps_patch.patch_trainer_for_mps(trainer, tensors_on="cpu")
    finally:
        logger.remove(sink_id)
    assert all(any(reason in message for message in messages) for reason in policy.reasons.values())
    assert any("built before the MPS policy" in message for message in messages)


def test_setup_mps_environment_sets_the_variables(monkeypatch, warnings_seen):  # noqa: F811
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    monkeypatch.delenv("PYTORCH_MPS_HIGH_WATERMARK_RATIO", raising=False)
    assert mps_patch.setup_mps_environment(high_watermark_ratio=1.2) == {
        "PYTORCH_ENABLE_MPS_FALLBACK": "1", "PYTORCH_MPS_HIGH_WATERMARK_RATIO": "1.2"}
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "1"
    assert os.environ["PYTORCH_MPS_HIGH_WATERMARK_RATIO"] == "1.2"
    assert len(warnings_seen) == 1 and "before importing torch" in warnings_seen[0]
    mps_patch.setup_mps_environment(high_watermark_ratio=1.2)
    assert len(warnings_seen) == 1  # unchanged values: nothing comes too late
    mps_patch.setup_mps_environment(enable_fallback=False)
    assert os.environ["PYTORCH_ENABLE_MPS_FALLBACK"] == "0"


def test_setup_mps_environment_rejects_negative_ratio_and_warns_about_zero(monkeypatch, warnings_seen):  # noqa: F811
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK", raising=False)
    monkeypatch.setenv("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "1.7")
    with pytest.raises(ValueError, match="high_watermark_ratio"):
        mps_patch.setup_mps_environment(high_watermark_ratio=-1)
    mps_patch.setup_mps_environment(high_watermark_ratio=0)
    assert any("swap" in message for message in warnings_seen)


def test_importing_mps_patch_leaves_torch_unimported():
    code = "import sys, yolox.utils.mps_patch; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_helpers_without_mps(no_cuda):  # noqa: F811
    assert not mps_patch.is_mps_available()
    with pytest.raises(DeviceUnavailableError, match="MPS"):
        mps_patch.get_mps_device()
    assert mps_patch.mps_memory_info() == {}
    mps_patch.mps_empty_cache()
    mps_patch.mps_synchronize()


def test_helpers_reach_torch_mps_when_available(no_cuda, monkeypatch):  # noqa: F811
    calls = []
    monkeypatch.setattr(torch.backends.mps, "is_built", lambda: True)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "empty_cache", lambda: calls.append("empty"))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 10)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 30)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 100)
    monkeypatch.setenv("PYTORCH_MPS_HIGH_WATERMARK_RATIO", "2")
    assert mps_patch.get_mps_device() == torch.device("mps")
    mps_patch.mps_empty_cache()
    mps_patch.mps_synchronize()
    assert calls == ["empty", "sync"]
    assert mps_patch.mps_memory_info() == {"allocated": 10, "driver_allocated": 30, "limit": 200}


def real_trainer(tmp_path):
    """A real Trainer on a 4-image set with the millisecond TinyDetector (tests/fixtures/tiny_coco.py), built on CPU."""
    trainer_module = pytest.importorskip("yolox.core.trainer")
    tiny_coco = pytest.importorskip("tests.fixtures.tiny_coco")
    from tests.core.conftest import train_args
    from yolox.exp import get_exp
    from yolox.utils.device import build_policy

    data_dir = tiny_coco.make_tiny_coco(tmp_path / "coco", num_train=4, num_val=2)
    exp_file = tiny_coco.write_exp_file(tmp_path / "tiny_exp.py", data_dir, tmp_path / "out", max_epoch=1,
                                        no_aug_epochs=0, extra=tiny_coco.TINY_MODEL)
    exp = get_exp(str(exp_file))
    exp.eval_interval = 10  # no evaluation: the patch is about training
    return trainer_module.Trainer(exp, train_args(batch_size=2), policy=build_policy("cpu"))


def test_real_trainer_takes_the_mps_policy(no_cuda, tmp_path):  # noqa: F811
    trainer = real_trainer(tmp_path)
    policy = mps_patch.patch_trainer_for_mps(trainer, tensors_on="cpu", amp_probe=failing_probe)
    assert trainer.policy is policy and trainer.device == policy.device
    assert not trainer.amp_training and not trainer.scaler.is_enabled() and trainer.data_type == torch.float32
    assert trainer.exp.loader_kwargs(trainer.policy)["pin_memory"] is False


@pytest.mark.slow
def test_real_trainer_trains_through_the_patched_mps_policy(no_cuda, tmp_path):  # noqa: F811
    """An epoch of the real Trainer by MPS rules (cache released every iteration) with torch.cuda raising."""
    trainer = real_trainer(tmp_path)
    mps_patch.patch_trainer_for_mps(trainer, tensors_on="cpu", amp_probe=failing_probe, cache_release_every=1)
    trainer.train()
    log = (Path(trainer.file_name) / "train_log.txt").read_text()
    assert "rules: mps, simulated" in log and "mps mem:" in log
    assert trainer.cache_releases >= 1
