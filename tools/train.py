#!/usr/bin/env python3
"""Train a YOLOX model on CUDA, Apple MPS or CPU (the device layer decides the details)."""
import argparse

from loguru import logger

from yolox.core import launch
from yolox.exp import check_exp_value, get_exp
from yolox.utils.setup_env import configure_module, configure_nccl, configure_omp
from yolox.utils.user_errors import CLIParser, UserError, run_cli

DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: CUDA, then MPS, then CPU)"


SWITCH = {"auto": None, "on": True, "off": False}


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX train parser")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("--dist-backend", default=None, type=str,
                        help="distributed backend (default: the device policy's: nccl on CUDA, gloo on CPU)")
    parser.add_argument("--dist-url", default=None, type=str, help="url used to set up distributed training")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size over all processes")
    parser.add_argument("-d", "--devices", default=None, type=int, help="processes (devices) per machine")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment description file")
    parser.add_argument("--resume", default=False, action="store_true", help="resume training")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint file")
    parser.add_argument("-e", "--start_epoch", default=None, type=int, help="resume training start epoch (1-based)")
    parser.add_argument("--num_machines", default=1, type=int, help="num of node for training")
    parser.add_argument("--machine_rank", default=0, type=int, help="node rank for multi-node training")
    parser.add_argument("--fp16", dest="fp16", default=False, action="store_true",
                        help="mixed precision training (the device policy picks the dtype and scaler)")
    parser.add_argument("--cache", type=str, nargs="?", const="ram",
                        help="cache images in RAM (default) or on disk for faster training")
    parser.add_argument("-o", "--occupy", dest="occupy", default=False, action="store_true",
                        help="occupy GPU memory first for training (CUDA only)")
    parser.add_argument("-l", "--logger", type=str, default="tensorboard", help="logger to be used for metrics")
    parser.add_argument("--device", type=str, default="auto", help=DEVICE_HELP)
    parser.add_argument("--bf16", default=False, action="store_true",
                        help="bfloat16 autocast, no grad scaler (where the device supports it)")
    parser.add_argument("--channels-last", choices=SWITCH, default="auto",
                        help="channels_last memory layout (auto: the device policy's measured default)")
    parser.add_argument("--fused-bn-act", choices=SWITCH, default="auto",
                        help="fused BatchNorm+SiLU CPU kernel in training (auto: the device policy's measured default)")
    parser.add_argument("--compile", choices=SWITCH, default="auto",
                        help="torch.compile the training model (auto: the device policy's default, off)")
    parser.add_argument("--cudnn-benchmark", choices=SWITCH, default="auto",
                        help="cuDNN autotuning (auto: off, since multi-scale re-tunes at every new size)")
    parser.add_argument("--trust-ckpt", dest="trust_ckpt", default=False, action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    parser.add_argument("--strict-data", action="store_true",
                        help="stop on a missing or corrupt image instead of skipping it (exp field strict_data)")
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE pairs to modify the exp")
    return parser


def process_policy(args, world_size: int):
    """The device policy of this process (each DDP worker builds its own for its local rank)."""
    from yolox.utils.device import build_policy
    from yolox.utils.dist import get_local_rank

    return build_policy(args.device, fp16=args.fp16, bf16=getattr(args, "bf16", False) or None,
                        channels_last=SWITCH[getattr(args, "channels_last", "auto")],
                        cudnn_benchmark=SWITCH[getattr(args, "cudnn_benchmark", "auto")],
                        compile_model=SWITCH[getattr(args, "compile", "auto")],
                        fused_bn_act=SWITCH[getattr(args, "fused_bn_act", "auto")],
                        local_rank=get_local_rank(), world_size=world_size)


@logger.catch(reraise=True, exclude=UserError)
def main(exp, args) -> None:
    from yolox.utils.dist import get_world_size

    world_size = get_world_size()
    policy = process_policy(args, world_size)
    exp.device_policy = policy
    if exp.seed is not None:
        policy.seed_everything(exp.seed, deterministic=True)
        logger.warning("You have chosen to seed training. This will turn on the CUDNN deterministic setting, "
                       "which can slow down your training considerably!")
    trainer = exp.get_trainer(args)
    trainer.train()


def resolve_devices(args) -> tuple:
    """(processes per machine, backend) from -d, --device and the device policy."""
    from yolox.utils.device import DeviceUnavailableError, build_policy, device_count

    requested = args.devices if args.devices is not None else 1
    try:
        policy = build_policy(args.device, world_size=requested)
    except DeviceUnavailableError as error:
        raise SystemExit(str(error)) from None
    if policy.kind == "cuda":
        available = device_count("cuda")
        if args.devices is None:
            requested = max(available, 1)
        elif requested > available:
            raise SystemExit(f"-d {requested} asks for more CUDA devices than the {available} visible")
    backend = args.dist_backend or policy.dist_backend
    return requested, backend


def run(argv=None) -> None:
    configure_module()
    args = make_parser().parse_args(argv)
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    exp.strict_data = exp.strict_data or args.strict_data
    check_exp_value(exp)
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    num_devices, backend = resolve_devices(args)
    if args.cache is not None:
        exp.dataset = exp.get_dataset(cache=True, cache_type=args.cache)
    if num_devices > 1:  # before the workers start, so their thread pools and NCCL see it
        configure_omp()
        if backend == "nccl":
            configure_nccl()
    dist_url = "auto" if args.dist_url is None else args.dist_url
    launch(main, num_devices, args.num_machines, args.machine_rank, backend=backend, dist_url=dist_url,
           args=(exp, args))


def cli() -> None:
    """The `yolox-train` command: run() with user errors as one line and exit status 2."""
    run_cli(run)


if __name__ == "__main__":
    cli()
