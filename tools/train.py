#!/usr/bin/env python3
"""Train a YOLOX model on CUDA, Apple MPS or CPU (the device layer decides the details)."""
import argparse
import os
from typing import Optional, Tuple

from loguru import logger

from yolox.cli.flags import add_device_args, add_run_args, policy_from_args, prepare_environment, time_epoch_cap
from yolox.utils.user_errors import CLIParser, UserError, run_cli

prepare_environment()  # before anything imports torch, which reads the MPS variables when it starts

from yolox.core import launch
from yolox.core.launch import launched_by_torchrun
from yolox.diagnostics.device_check.before_training import checked_policy
from yolox.exp import check_exp_value, get_exp
from yolox.utils.compat import call_with_supported
from yolox.utils.device import DevicePolicy, device_count
from yolox.utils.dist import get_local_rank, get_world_size
from yolox.utils.setup_env import configure_module, configure_nccl, configure_omp


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX train parser")
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size over all processes")
    parser.add_argument("--num_machines", default=1, type=int, help="num of node for training")
    parser.add_argument("--machine_rank", default=0, type=int, help="node rank for multi-node training")
    parser.add_argument("-o", "--occupy", dest="occupy", default=False, action="store_true",
                        help="occupy GPU memory first for training (CUDA only)")
    add_device_args(parser)
    add_run_args(parser)
    return parser


def process_policy(args, world_size: int) -> DevicePolicy:
    """The device policy of this process (each DDP worker builds its own for its local rank)."""
    return policy_from_args(args, local_rank=get_local_rank(), world_size=world_size)


@logger.catch(reraise=True, exclude=UserError)
def main(exp, args, policy: Optional[DevicePolicy] = None) -> None:
    """Train in this process; `policy` is the one the command built when it trains in place, else built here."""
    if policy is None:
        policy = process_policy(args, get_world_size())
    if exp.seed is not None:
        policy.seed_everything(exp.seed, deterministic=True)
        logger.warning("You have chosen to seed training. This will turn on the CUDNN deterministic setting, "
                       "which can slow down your training considerably!")
    trainer = call_with_supported(exp.get_trainer, args, optional={"policy": policy})
    trainer.train()


def resolve_devices(args) -> Tuple[int, DevicePolicy]:
    """(processes per machine, the policy of -d processes) from -d, --device and the device policy."""
    requested = args.devices if args.devices is not None else 1
    policy = checked_policy(lambda: policy_from_args(args, world_size=requested))
    if policy.kind == "cuda":
        available = device_count("cuda")
        if args.devices is None:
            requested = max(available, 1)
        elif requested > available:
            raise SystemExit(f"-d {requested} asks for more CUDA devices than the {available} visible")
    return requested, policy


def run(argv=None) -> None:
    configure_module()
    args = make_parser().parse_args(argv)
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    exp.strict_data = exp.strict_data or args.strict_data
    check_exp_value(exp)
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    args.time_max_epoch = time_epoch_cap(args, exp)
    num_devices, policy = resolve_devices(args)
    backend = args.dist_backend or policy.dist_backend
    if args.cache is not None:
        exp.dataset = exp.get_dataset(cache=True, cache_type=args.cache)
    if num_devices > 1:  # before the workers start, so their thread pools and NCCL see it
        configure_omp()
        if backend == "nccl":
            configure_nccl()
    # one process trains with the policy built here; each of several processes builds its own for its rank
    in_place = num_devices * args.num_machines == 1 and not launched_by_torchrun()
    dist_url = "auto" if args.dist_url is None else args.dist_url
    launch(main, num_devices, args.num_machines, args.machine_rank, backend=backend, dist_url=dist_url,
           args=(exp, args, policy if in_place else None))


def cli() -> None:
    """The `yolox-train` command: run() with user errors as one line and exit status 2."""
    run_cli(run)


if __name__ == "__main__":
    cli()
