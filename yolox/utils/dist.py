"""Process-group helpers that also work in a single process (world size 1, no process group).

Python objects travel over gloo (CPU tensors) whatever the default backend, so gathering evaluation results
never needs a GPU. Local rank and size come from LOCAL_RANK / LOCAL_WORLD_SIZE, which torchrun sets and the
YOLOX launcher sets for the processes it spawns.
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "all_gather",
    "average_gradients",
    "broadcast_object",
    "gather",
    "get_local_rank",
    "get_local_size",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "ranks_where",
    "shared_random_seed",
    "synchronize",
    "time_synchronized",
    "wait_for_the_master",
]

# Gradients are averaged in flat buffers of at most this size: one collective each, bounded extra memory (DDP's 25 MiB).
GRAD_BUCKET_BYTES = 25 << 20

# The gloo group made for object collectives when the default backend is NCCL (new_group is collective: make once).
_GLOO_GROUPS: Dict[Any, Any] = {}


def is_dist_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist_initialized() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist_initialized() else 0


def get_local_rank() -> int:
    """Rank within this machine: LOCAL_RANK when set, else the global rank (one machine)."""
    if not is_dist_initialized():
        return 0
    return int(os.environ.get("LOCAL_RANK", get_rank()))


def get_local_size() -> int:
    """Processes on this machine: LOCAL_WORLD_SIZE when set, else the world size (one machine)."""
    if not is_dist_initialized():
        return 1
    return int(os.environ.get("LOCAL_WORLD_SIZE", get_world_size()))


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; a no-op in a single process."""
    if get_world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def wait_for_the_master(local_rank: Optional[int] = None) -> Iterator[None]:
    """Local rank 0 runs the body first (e.g. builds a dataset cache); the other ranks run it afterwards."""
    if get_world_size() == 1:
        yield
        return
    local_rank = get_local_rank() if local_rank is None else local_rank
    if local_rank > 0:
        dist.barrier()
    yield
    if local_rank == 0:
        dist.barrier()


def _gloo_group() -> Any:
    """A gloo group over all ranks: the default group when it already is gloo, else one made once per group."""
    world = dist.group.WORLD
    if dist.get_backend() == "gloo":
        return world
    if world not in _GLOO_GROUPS:  # a new default group (after a re-initialisation) gets a new gloo group
        _GLOO_GROUPS.clear()
        _GLOO_GROUPS[world] = dist.new_group(backend="gloo")
    return _GLOO_GROUPS[world]


def all_gather(obj: Any) -> List[Any]:
    """Every rank's picklable `obj`, in rank order (a one-element list in a single process)."""
    world_size = get_world_size()
    if world_size == 1:
        return [obj]
    gathered: List[Any] = [None] * world_size
    dist.all_gather_object(gathered, obj, group=_gloo_group())
    return gathered


def gather(obj: Any, dst: int = 0) -> List[Any]:
    """Every rank's `obj` in rank order on rank `dst`; an empty list on the other ranks."""
    world_size = get_world_size()
    if world_size == 1:
        return [obj]
    is_dst = get_rank() == dst
    gathered: Optional[List[Any]] = [None] * world_size if is_dst else None
    dist.gather_object(obj, gathered, dst=dst, group=_gloo_group())
    return gathered if is_dst else []


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if get_world_size() == 1:
        return obj
    holder = [obj if get_rank() == src else None]
    dist.broadcast_object_list(holder, src=src, group=_gloo_group())
    return holder[0]


def ranks_where(flag: bool) -> List[int]:
    """The ranks on which `flag` is True, known to every rank.

    Host values over gloo: the device is not synchronised, so a per-iteration check costs no GPU stall.
    """
    if get_world_size() == 1:
        return [0] if flag else []
    flags = torch.zeros(get_world_size(), dtype=torch.int32)
    flags[get_rank()] = int(flag)
    dist.all_reduce(flags, group=_gloo_group())
    return [rank for rank, value in enumerate(flags.tolist()) if value]


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over all ranks (default group); parameters without one are skipped.

    Every rank must hold gradients for the same parameters (as DDP requires without find_unused_parameters).
    """
    world_size = get_world_size()
    if world_size == 1:
        return
    bucket: List[torch.Tensor] = []
    bucket_bytes = 0
    for grad in (p.grad for p in params if p.grad is not None):
        if bucket and (grad.dtype != bucket[0].dtype or bucket_bytes + grad.nbytes > GRAD_BUCKET_BYTES):
            _average_bucket(bucket, world_size)
            bucket, bucket_bytes = [], 0
        bucket.append(grad)
        bucket_bytes += grad.nbytes
    if bucket:
        _average_bucket(bucket, world_size)


def _average_bucket(grads: List[torch.Tensor], world_size: int) -> None:
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def shared_random_seed() -> int:
    """A random int drawn on rank 0 and shared by all ranks."""
    return int(broadcast_object(int(np.random.randint(2 ** 31))))


def time_synchronized(policy: Any = None) -> float:
    """time.time() after the policy's device has finished its queued work (no sync without a policy)."""
    if policy is not None:
        policy.synchronize()
    return time.time()
