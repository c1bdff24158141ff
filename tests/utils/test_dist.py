"""dist helpers in a single process (no process group) and across two gloo processes."""
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from yolox.utils import dist
from yolox.utils.device import MemoryBackend, build_policy


def test_single_process_helpers_without_process_group():
    assert not torch_dist.is_initialized()
    assert (dist.get_world_size(), dist.get_rank(), dist.get_local_rank(), dist.get_local_size()) == (1, 0, 0, 1)
    assert dist.is_main_process()
    payload = {"boxes": [1, 2, 3]}
    assert dist.all_gather(payload) == [payload]
    assert dist.gather(payload, dst=0) == [payload]
    assert dist.broadcast_object(payload) is payload
    dist.synchronize()
    ran = []
    with dist.wait_for_the_master():
        ran.append(True)
    assert ran == [True]
    assert dist.ranks_where(True) == [0] and dist.ranks_where(False) == []
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    dist.average_gradients([param])
    assert torch.equal(param.grad, torch.ones(2))


def test_time_synchronized_waits_for_the_policy_device():
    class CountingMemory(MemoryBackend):
        synced = 0

        def synchronize(self):
            self.synced += 1

    memory = CountingMemory()
    policy = build_policy("cpu", memory=memory)
    before = time.time()
    stamp = dist.time_synchronized(policy)
    assert memory.synced == 1 and before <= stamp <= time.time()
    assert dist.time_synchronized() >= stamp and memory.synced == 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _two_rank_worker(rank: int, port: int, scratch: str) -> None:
    os.environ["LOCAL_RANK"] = str(rank)
    torch_dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=2, rank=rank)
    try:
        assert (dist.get_world_size(), dist.get_rank(), dist.get_local_rank()) == (2, rank, rank)
        assert dist.is_main_process() == (rank == 0)
        assert dist.all_gather({"rank": rank, "dets": [rank] * (rank + 1)}) == [
            {"rank": 0, "dets": [0]}, {"rank": 1, "dets": [1, 1]}]
        gathered = dist.gather(f"from {rank}", dst=1)
        assert gathered == (["from 0", "from 1"] if rank == 1 else [])
        assert dist.broadcast_object({"size": 640 + rank}, src=0) == {"size": 640}
        assert dist.broadcast_object((rank, "x"), src=1) == (1, "x")
        seeds = dist.all_gather(dist.shared_random_seed())
        assert seeds[0] == seeds[1]
        marker = Path(scratch, "master_done")
        with dist.wait_for_the_master():
            if rank == 0:
                marker.write_text("built")
            else:
                assert marker.read_text() == "built"  # rank 1 runs the body only after rank 0
        assert dist.ranks_where(rank == 1) == [1] and dist.ranks_where(True) == [0, 1]
        assert dist.ranks_where(False) == []
        _check_gradient_averaging(rank)
        dist.synchronize()
        Path(scratch, f"rank{rank}_ok").write_text("ok")
    finally:
        torch_dist.destroy_process_group()


def _check_gradient_averaging(rank: int) -> None:
    dist.GRAD_BUCKET_BYTES = 40  # the 12-byte vector and the 64-byte kernel land in separate buckets
    vector = torch.nn.Parameter(torch.zeros(3))
    vector.grad = torch.tensor([1.0, 2.0, 3.0]) * (rank + 1)
    kernel = torch.nn.Parameter(torch.zeros(2, 2, 2, 2).to(memory_format=torch.channels_last))
    kernel.grad = (torch.arange(16.0).reshape(2, 2, 2, 2) * (rank + 1)).to(memory_format=torch.channels_last)
    unused = torch.nn.Parameter(torch.zeros(1))
    dist.average_gradients([vector, unused, kernel])
    assert torch.equal(vector.grad, torch.tensor([1.5, 3.0, 4.5]))
    assert torch.equal(kernel.grad, torch.arange(16.0).reshape(2, 2, 2, 2) * 1.5)
    assert unused.grad is None


def test_objects_travel_between_two_gloo_processes(tmp_path):
    if not torch_dist.is_available() or not torch_dist.is_gloo_available():
        pytest.skip("this torch build has no gloo backend")
    # fork: the children inherit the imported torch instead of importing it again (seconds on a busy CPU)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_two_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method=method)
    assert sorted(path.name for path in tmp_path.glob("rank*_ok")) == ["rank0_ok", "rank1_ok"]
