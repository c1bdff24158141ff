#!/usr/bin/env python3
"""COCO-style evaluation of a YOLOX checkpoint on CUDA, Apple MPS or CPU."""
import argparse
import os
from typing import Optional

from loguru import logger
from torch.nn.parallel import DistributedDataParallel as DDP

from yolox.cli.flags import add_device_args, policy_from_args
from yolox.utils.user_errors import CLIParser, UserError, run_cli

from yolox.core import launch
from yolox.core.exp_calls import build_evaluator
from yolox.core.launch import launched_by_torchrun
from yolox.exp import get_exp
from yolox.utils.checkpoint import load_run_model
from yolox.utils.device import DevicePolicy, device_count
from yolox.utils.dist import get_local_rank, get_rank, get_world_size
from yolox.utils.logger import setup_logger
from yolox.utils.model_utils import fuse_model, get_model_info
from yolox.utils.setup_env import configure_module, configure_nccl, configure_omp


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX Eval")
    parser.add_argument("-expn", "--experiment-name", type=str, default=None)
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("--dist-backend", default=None, type=str,
                        help="distributed backend (default: the device policy's)")
    parser.add_argument("--dist-url", default=None, type=str, help="url used to set up distributed evaluation")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size")
    parser.add_argument("-d", "--devices", default=None, type=int, help="processes (devices) per machine")
    parser.add_argument("--num_machines", default=1, type=int, help="num of node for evaluation")
    parser.add_argument("--machine_rank", default=0, type=int, help="node rank for multi-node evaluation")
    parser.add_argument("-f", "--exp_file", default=None, type=str, help="experiment description file")
    parser.add_argument("-c", "--ckpt", default=None, type=str, help="checkpoint (default: best_ckpt.pth)")
    parser.add_argument("--conf", default=None, type=float, help="test conf")
    parser.add_argument("--nms", default=None, type=float, help="test nms threshold")
    parser.add_argument("--tsize", default=None, type=int, help="test img size")
    parser.add_argument("--seed", default=None, type=int, help="eval seed")
    parser.add_argument("--fuse", dest="fuse", default=False, action="store_true", help="fuse conv and bn")
    parser.add_argument("--trt", dest="trt", default=False, action="store_true",
                        help="use a TensorRT model (CUDA and torch2trt only)")
    parser.add_argument("--legacy", dest="legacy", default=False, action="store_true",
                        help="old (RGB, mean/std) preprocessing")
    parser.add_argument("--test", dest="test", default=False, action="store_true", help="evaluate on test-dev")
    parser.add_argument("--speed", dest="speed", default=False, action="store_true", help="speed test only")
    parser.add_argument("--trust-ckpt", dest="trust_ckpt", default=False, action="store_true",
                        help="allow checkpoints that need full unpickling (only for files you trust)")
    add_device_args(parser)
    parser.set_defaults(fp16=False)     # evaluation stays fp32 unless --fp16 asks (upstream's eval default)
    parser.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="KEY VALUE pairs to modify the exp")
    return parser


def apply_overrides(exp, args) -> None:
    if args.conf is not None:
        exp.test_conf = args.conf
    if args.nms is not None:
        exp.nmsthre = args.nms
    if args.tsize is not None:
        exp.test_size = (args.tsize, args.tsize)


def load_trt_decoder(model, file_name: str, args, policy, is_distributed: bool):
    """(trt_file, decoder) for --trt, with the checks upstream makes; CUDA and torch2trt only."""
    if not args.trt:
        return None, None
    if policy.kind != "cuda":
        raise SystemExit(f"--trt needs CUDA; this run uses {policy.kind}")
    if args.fuse or is_distributed or args.batch_size != 1:
        raise SystemExit("--trt evaluates one unfused model in one process with -b 1")
    trt_file = os.path.join(file_name, "model_trt.pth")
    if not os.path.exists(trt_file):
        raise SystemExit(f"{trt_file} not found: convert the model with tools/trt.py first")
    model.head.decode_in_inference = False
    return trt_file, model.head.decode_outputs


@logger.catch(reraise=True, exclude=UserError)
def main(exp, args, num_devices: int, policy: Optional[DevicePolicy] = None) -> None:
    """Evaluate in this process; `policy` is the one the command built when it runs in place, else built here."""
    world_size = get_world_size()
    is_distributed = world_size > 1
    if policy is None:
        policy = policy_from_args(args, local_rank=get_local_rank(), world_size=world_size)
    if args.seed is not None:
        policy.seed_everything(args.seed, deterministic=True)
        logger.warning("You have turned on seeded evaluation: deterministic kernels may slow it down.")
    policy.set_current_device()
    policy.configure_backends()

    file_name = os.path.join(exp.output_dir, args.experiment_name)
    if get_rank() == 0:
        os.makedirs(file_name, exist_ok=True)
    setup_logger(file_name, distributed_rank=get_rank(), filename="val_log.txt", mode="a")
    logger.info(f"Args: {args}")
    for line in policy.describe():
        logger.info(f"device policy: {line}")
    apply_overrides(exp, args)

    if args.speed or args.trt:
        model = exp.get_model()
    else:
        model = load_run_model(exp, args.ckpt, file_name, trust_pickle=args.trust_ckpt)
    logger.info(f"Model Summary: {get_model_info(model, exp.test_size)}")
    evaluator = build_evaluator(exp, args.batch_size, is_distributed, policy, testdev=args.test, legacy=args.legacy)
    evaluator.per_class_AP = True
    evaluator.per_class_AR = True
    # the layout training evaluated in, so best_ckpt.pth gives the figure it logged
    model = policy.place_model(model)
    model.eval()
    if is_distributed:
        model = DDP(model, device_ids=[policy.device.index] if policy.device.type == "cuda" else None)
    if args.fuse:
        logger.info("\tFusing model...")
        model = fuse_model(model)
    trt_file, decoder = load_trt_decoder(model, file_name, args, policy, is_distributed)

    ap50_95, ap50, summary = evaluator.evaluate(model, is_distributed, args.fp16, trt_file, decoder,
                                                exp.test_size, policy=policy)
    logger.info("\n" + str(summary))
    logger.info(f"AP50:95 {ap50_95:.6f}, AP50 {ap50:.6f}")


def run(argv=None) -> None:
    configure_module()
    args = make_parser().parse_args(argv)
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    if not args.experiment_name:
        args.experiment_name = exp.exp_name
    num_devices = args.devices if args.devices is not None else 1
    policy = policy_from_args(args, world_size=num_devices)
    if policy.kind == "cuda" and num_devices > device_count("cuda"):
        raise SystemExit(f"-d {num_devices} asks for more CUDA devices than the {device_count('cuda')} visible")
    if num_devices > 1:  # before the workers start, so their thread pools and NCCL see it
        configure_omp()
        if (args.dist_backend or policy.dist_backend) == "nccl":
            configure_nccl()
    # one process evaluates with the policy built here; each of several processes builds its own for its rank
    in_place = num_devices * args.num_machines == 1 and not launched_by_torchrun()
    launch(main, num_devices, args.num_machines, args.machine_rank, backend=args.dist_backend or policy.dist_backend,
           dist_url="auto" if args.dist_url is None else args.dist_url,
           args=(exp, args, num_devices, policy if in_place else None))


def cli() -> None:
    """The `yolox-eval` command: run() with user errors as one line and exit status 2."""
    run_cli(run)


if __name__ == "__main__":
    cli()
