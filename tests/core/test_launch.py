"""Process launching: one process in place, N gloo workers on the CPU, torchrun detection."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolox.core import launch
from yolox.core.launch import find_free_port, launched_by_torchrun

REPO = Path(__file__).resolve().parents[2]


def test_single_process_runs_in_place_without_process_group():
    seen = []
    launch(lambda a, b: seen.append((a, b, torch.distributed.is_initialized())), 1, args=(1, 2))
    assert seen == [(1, 2, False)]


def test_free_port_is_bindable():
    port = find_free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_torchrun_environment_detection(monkeypatch):
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_torchrun()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched_by_torchrun()
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched_by_torchrun()


def test_no_backend_refuses_multiprocess():
    with pytest.raises(ValueError, match="no distributed backend|needs a distributed backend"):
        launch(print, 2, backend=None)


def test_mps_multiprocess_is_refused_with_reason(tiny_exp_file):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "-f", str(tiny_exp_file),
                             "-d", "2", "--device", "mps"], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), cwd=str(REPO))
    assert result.returncode != 0
    assert "MPS" in result.stderr and "Traceback" not in result.stderr


def test_two_gloo_processes_end_with_identical_weights(tiny_exp_file):
    out = tiny_exp_file.parent / "out" / "ddp"
    result = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "-f", str(tiny_exp_file), "-d", "2",
                             "-b", "4", "--device", "cpu", "-expn", "ddp", "max_epoch", "2"],
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"), cwd=str(REPO))
    assert result.returncode == 0, result.stderr[-4000:]
    rank0 = torch.load(out / "final_rank0.pt", weights_only=True)
    rank1 = torch.load(out / "final_rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    log = (out / "train_log.txt").read_text()
    assert "dist_backend = gloo" in log and "iter: 2/3" in log
    ckpt = torch.load(out / "latest_ckpt.pth", weights_only=True)
    assert not any(key.startswith("module.") for key in ckpt["model"])
    assert ckpt["samples_seen"] == 12  # per rank: 2 epochs x 3 iterations x 2 images
