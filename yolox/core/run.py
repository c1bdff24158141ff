"""The one function that runs a training: processes, seeding, the image cache, launch and the trainer choice.

Both training commands (`yolox-train`, `yolox-train-craters`) end here, so a flag means the same in each:
- `-d` left out: one process, on every device; `-d N`: N processes, one per GPU on CUDA (more than the GPUs
  visible is an error), gloo processes on the CPU, refused on MPS (one device, no collective backend).
- `seed` (exp field): every process seeds Python, NumPy, torch and its device before the model is built, so a
  seeded run starts from the same weights and data order; repeatable (slower) kernels only with
  `--deterministic`.
- `--cache ram|disk`: the training images are cached once, before the processes start, and shared with them.
"""
from typing import Callable, Optional

from loguru import logger

from yolox.core.exp_calls import build_trainer
from yolox.core.launch import launch, launched_by_torchrun
from yolox.core.options import RunOptions
from yolox.core.trainer import Trainer
from yolox.utils.device import DevicePolicy, device_count
from yolox.utils.dist import get_local_rank, get_world_size
from yolox.utils.setup_env import configure_nccl, configure_omp
from yolox.utils.user_errors import UserError

__all__ = ["train", "train_in_process", "process_count", "ProcessCountError"]

# builds the device policy of one worker process from (local rank, world size)
RankPolicy = Callable[..., DevicePolicy]


class ProcessCountError(UserError, ValueError):
    """-d asks for processes this machine cannot run."""


def process_count(devices: Optional[int], policy: DevicePolicy, dist_backend: Optional[str] = None) -> int:
    """Training processes on this machine for `-d devices` on `policy`'s device (see the module docstring)."""
    requested = max(1, int(devices or 1))
    if requested == 1:
        return 1
    if policy.dist_backend is None and dist_backend is None:
        raise ProcessCountError(f"-d {requested} on {policy.kind}: {policy.reasons['dist_backend']}")
    if policy.kind == "cuda":
        visible = device_count("cuda")
        if requested > visible:
            raise ProcessCountError(f"-d {requested} asks for more CUDA devices than the {visible} visible: give "
                                    f"-d {max(visible, 1)} or fewer")
    return requested


def train(exp, options: RunOptions, policy: DevicePolicy, rank_policy: Optional[RankPolicy] = None
          ) -> Optional[Trainer]:
    """Train `exp` as `options` says on `policy`'s device.

    Returns the trainer when it ran in this process; None when worker processes ran it (rank 0's results are
    in the run folder). `rank_policy(local_rank=, world_size=)` builds each worker's own policy; it is needed
    only for several processes.
    """
    processes = process_count(options.devices, policy, options.dist_backend)
    backend = options.dist_backend or policy.dist_backend
    if options.cache is not None:
        # the exp's training images, cached before the workers start so that forked workers share the cache
        exp.dataset = exp.get_dataset(cache=True, cache_type=options.cache)
    in_place = processes * options.num_machines == 1 and not launched_by_torchrun()
    if in_place:
        return train_in_process(exp, options, policy)
    if rank_policy is None:
        raise ValueError("several training processes need rank_policy to build each one's device policy")
    configure_omp()     # before the workers start, so their thread pools see it
    if backend == "nccl":
        configure_nccl()
    policy.release_cache()
    launch(_train_worker, processes, options.num_machines, options.machine_rank, backend=backend,
           dist_url=options.dist_url or "auto", args=(exp, options, rank_policy),
           start_method="fork" if options.cache is not None else "spawn")
    return None


def _train_worker(exp, options: RunOptions, rank_policy: RankPolicy) -> None:
    train_in_process(exp, options, rank_policy(local_rank=get_local_rank(), world_size=get_world_size()))


def train_in_process(exp, options: RunOptions, policy: DevicePolicy) -> Trainer:
    """Seed, build the trainer the exp chooses (`exp.get_trainer`) and train; returns the trainer."""
    if exp.seed is not None:
        policy.seed_everything(int(exp.seed), deterministic=options.deterministic)
        if options.deterministic:
            logger.warning("--deterministic: repeatable kernels where the device has them; training is slower")
    trainer = build_trainer(exp, options, policy)
    trainer.train()
    return trainer
