"""Process launching: one process in place, N gloo workers on the CPU, torchrun detection."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from yolox.core import launch
from yolox.core.launch import RankFailed, failure_line, find_free_port, launched_by_torchrun

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


def _rank1_dies_rank0_hangs() -> None:
    """Rank 1 is SIGKILLed; rank 0 hangs outside any collective, where no backend timeout can reach it."""
    if torch.distributed.get_rank() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)


def test_a_killed_rank_stops_the_hanging_one_with_one_line_naming_it():
    from tests.conftest import loguru_messages

    started = time.monotonic()
    with loguru_messages("ERROR") as messages, pytest.raises(RankFailed) as failure:
        launch(_rank1_dies_rank0_hangs, 2, backend="gloo", dist_url="auto")
    assert time.monotonic() - started < 60
    assert str(failure.value).startswith("rank 1 (pid ") and "was killed by SIGKILL" in str(failure.value)
    assert "--resume" in str(failure.value)
    assert [line for line in messages if "rank 1 (pid" in line] == [str(failure.value)]


def test_failure_line_names_exit_status_and_raised_error():
    from torch.multiprocessing.spawn import ProcessExitedException, ProcessRaisedException

    exited = ProcessExitedException("process 1 terminated with exit code 3", 1, 4321, exit_code=3)
    assert failure_line(exited, rank=5, local_workers=4).startswith(
        "rank 5 (pid 4321) exited with status 3; the other 3 process(es) of this machine were stopped.")
    trace = "Traceback (most recent call last):\n  File x\nRuntimeError: Connection closed by peer\n"
    raised = ProcessRaisedException(f"\n\n-- Process 0 terminated with the following error:\n{trace}", 0, 99)
    assert "rank 0 (pid 99) failed with RuntimeError: Connection closed by peer;" in failure_line(raised, 0, 2)


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
