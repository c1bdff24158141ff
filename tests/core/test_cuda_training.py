"""GPU checks for the coordinator's CUDA runs; skipped where yolox.utils.device sees no CUDA device."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy, device_count

REPO = Path(__file__).resolve().parents[2]
needs_cuda = pytest.mark.skipif(device_count("cuda") == 0, reason="no CUDA device visible to yolox.utils.device")


@needs_cuda
def test_fp16_training_on_cuda_uses_side_stream_scaler_and_gpu_memory_line(tiny_exp_file):
    policy = build_policy("cuda", fp16=True)
    trainer = Trainer(get_exp(str(tiny_exp_file)), train_args(), policy=policy)
    trainer.train()
    assert trainer.prefetcher.stream is not None and trainer.scaler.is_enabled()
    assert trainer.data_type == torch.float16 and trainer.train_loader.pin_memory
    assert next(trainer.model.parameters()).device.type == "cuda"
    ckpt = torch.load(Path(trainer.file_name) / "latest_ckpt.pth", weights_only=True)
    assert ckpt["scaler"]["scale"] > 0 and ckpt["rng"]["device"]["type"] == "cuda"
    assert "gpu mem: " in open(Path(trainer.file_name) / "train_log.txt").read()


@pytest.mark.skipif(device_count("cuda") < 2, reason="needs two CUDA devices")
def test_two_nccl_processes_end_with_identical_weights(tiny_exp_file):
    out = tiny_exp_file.parent / "out" / "ddp_cuda"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "-f", str(tiny_exp_file), "-d", "2",
                             "-b", "4", "--device", "cuda", "-expn", "ddp_cuda"], capture_output=True, text=True,
                            timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=str(REPO))
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(out / "final_rank0.pt", weights_only=True)
    rank1 = torch.load(out / "final_rank1.pt", weights_only=True)
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert "dist_backend = nccl" in (out / "train_log.txt").read_text()
