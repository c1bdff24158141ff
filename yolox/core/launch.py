"""Start one training/eval process, N local worker processes, or join a torchrun job."""
import os
import socket
from datetime import timedelta
from typing import Callable, Optional, Sequence

import torch.distributed as dist
import torch.multiprocessing as mp
from loguru import logger
from torch.multiprocessing.spawn import ProcessException, ProcessExitedException

from yolox.utils.user_errors import ReportedError

__all__ = ["launch", "find_free_port", "launched_by_torchrun", "DEFAULT_TIMEOUT", "RankFailed"]

# Collectives wait this long before failing. It is the backstop for ranks this launcher cannot watch (other
# machines); it stays long because legitimate waits are long (rank 0 checking or caching a large dataset).
DEFAULT_TIMEOUT = timedelta(minutes=30)


class RankFailed(ReportedError):
    """A worker process died or raised; the launcher has stopped the other workers of this machine."""


def find_free_port() -> int:
    """A TCP port that was free a moment ago on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun (or any launcher setting its env contract)."""
    return all(key in os.environ for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE")) \
        and int(os.environ["WORLD_SIZE"]) > 1


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           backend: Optional[str] = "nccl", dist_url: Optional[str] = None, args: Sequence = (),
           timeout: timedelta = DEFAULT_TIMEOUT, start_method: str = "spawn") -> None:
    """Run `main_func(*args)`.

    One process (the default) runs it in place with no process group. Under torchrun each process
    joins the group described by the environment. Otherwise `num_gpus_per_machine` worker
    processes are started (`start_method`: spawn, or fork to share a RAM image cache) and each joins
    the group at `dist_url` ("auto": a free local port).
    """
    if backend is None:
        raise ValueError("multi-process training needs a distributed backend; this device has none "
                         "(see the device policy's dist_backend reason)")
    if launched_by_torchrun():
        _join_torchrun_group(backend, timeout)
        main_func(*args)
        return
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        main_func(*args)
        return
    if dist_url is None or dist_url == "auto":
        if num_machines != 1:
            raise ValueError("--dist-url auto works on one machine only; give tcp://<master>:<port>")
        dist_url = f"tcp://127.0.0.1:{find_free_port()}"
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if num_machines > 1 and dist_url.startswith("file://"):
        logger.warning("file:// rendezvous across machines needs a shared file system")
    try:
        # start_processes watches every worker: the first to fail gets the others terminated at once
        # (SIGTERM, SIGKILL 30 s later), so no survivor waits in a collective for a dead peer
        mp.start_processes(
            _distributed_worker,
            nprocs=num_gpus_per_machine,
            args=(main_func, world_size, num_gpus_per_machine, machine_rank, backend, dist_url, tuple(args),
                  timeout),
            daemon=False,
            start_method=start_method,
        )
    except ProcessException as failure:
        message = failure_line(failure, machine_rank * num_gpus_per_machine + failure.error_index,
                               num_gpus_per_machine)
        logger.error(message)
        raise RankFailed(message) from failure


def failure_line(failure: ProcessException, rank: int, local_workers: int) -> str:
    """One line naming the failed rank, how it ended, and how to continue."""
    if isinstance(failure, ProcessExitedException):
        how = (f"was killed by {failure.signal_name}" if failure.signal_name else
               f"exited with status {failure.exit_code}")
    else:  # a Python exception: the last line of its traceback says which
        how = f"failed with {str(failure).strip().splitlines()[-1]}"
    return (f"rank {rank} (pid {failure.error_pid}) {how}; the other {local_workers - 1} process(es) of this "
            f"machine were stopped. Continue the run with --resume (it reads the run's latest_ckpt.pth)")


def _join_torchrun_group(backend: str, timeout: timedelta) -> None:
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    logger.info(f"joined torchrun group: rank {dist.get_rank()}/{dist.get_world_size()} "
                f"(local rank {os.environ['LOCAL_RANK']}), backend {backend}")


def _distributed_worker(local_rank: int, main_func: Callable, world_size: int, num_gpus_per_machine: int,
                        machine_rank: int, backend: str, dist_url: str, args: tuple,
                        timeout: timedelta) -> None:
    global_rank = machine_rank * num_gpus_per_machine + local_rank
    # the dist helpers and the device policy read the rank layout from the torchrun variables
    os.environ.update({"RANK": str(global_rank), "LOCAL_RANK": str(local_rank), "WORLD_SIZE": str(world_size),
                       "LOCAL_WORLD_SIZE": str(num_gpus_per_machine)})
    try:
        dist.init_process_group(backend=backend, init_method=dist_url, world_size=world_size,
                                rank=global_rank, timeout=timeout)
    except Exception:
        logger.error(f"process group initialisation failed at {dist_url}")
        raise
    dist.barrier(device_ids=[local_rank] if backend == "nccl" else None)
    try:
        main_func(*args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
