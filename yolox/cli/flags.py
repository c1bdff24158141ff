"""The device and run flags every training command shares, and the device policy built from them.

Both training commands (`tools/train.py`, `tools/train_crater_device_aware.py`) call `add_device_args` and
`add_run_args`, so a flag means the same thing in each; the other commands take `add_device_args` alone.
"""
import argparse
import sys
from typing import List, Optional

from yolox.utils.durations import TimeBudgetError, parse_duration
from yolox.utils.mps_patch import setup_mps_environment

__all__ = ["SWITCH", "DEVICE_HELP", "add_device_args", "add_run_args", "policy_from_args",
           "prepare_environment", "duration_arg", "time_epoch_cap", "options_from_args"]

SWITCH = {"auto": None, "on": True, "off": False}
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps (auto: CUDA, then MPS, then CPU)"


def add_device_args(parser: argparse.ArgumentParser, default_device: str = "auto") -> None:
    """--device and the device policy's switches; every switch left at auto is the policy's choice."""
    group = parser.add_argument_group("device (each 'auto' is the device policy's logged choice)")
    group.add_argument("--device", default=default_device, help=DEVICE_HELP)
    group.add_argument("--fp16", dest="fp16", action="store_const", const=True, default=None,
                       help="mixed precision (default: on for CUDA; on MPS only if a probe in a child process passes)")
    group.add_argument("--no-fp16", dest="fp16", action="store_const", const=False,
                       help="full fp32 (turns the CUDA default off)")
    group.add_argument("--bf16", action="store_const", const=True, default=None,
                       help="bfloat16 autocast, no grad scaler (where the device supports it)")
    group.add_argument("--channels-last", choices=SWITCH, default="auto", help="channels_last memory layout")
    group.add_argument("--fused-bn-act", choices=SWITCH, default="auto",
                       help="fused BatchNorm+SiLU CPU kernel in training")
    group.add_argument("--compile", choices=SWITCH, default="auto",
                       help="torch.compile the model's backbone (the first steps at each size take minutes)")
    group.add_argument("--cudnn-benchmark", choices=SWITCH, default="auto",
                       help="cuDNN autotuning (auto: off, since multi-scale re-tunes at every new size)")
    group.add_argument("--cache-release-every", type=int, default=None,
                       help="iterations between device cache releases")
    group.add_argument("--mps-high-watermark", type=float, default=None,
                       help="PYTORCH_MPS_HIGH_WATERMARK_RATIO, set before torch starts (0 = no limit)")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """Experiment, checkpoint, processes, data and logging flags of a training run."""
    group = parser.add_argument_group("run")
    group.add_argument("-f", "--exp_file", default=None, help="experiment file")
    group.add_argument("-expn", "--experiment-name", default=None, help="run folder name under the exp's output_dir")
    group.add_argument("-c", "--ckpt", default=None, help="weights to start from, or the checkpoint to resume")
    group.add_argument("--resume", action="store_true", help="resume from -c or the run's latest_ckpt.pth")
    group.add_argument("-e", "--start_epoch", type=int, default=None, help="resume at this 1-based epoch")
    group.add_argument("-d", "--devices", type=int, default=None,
                       help="training processes: one per GPU on CUDA, gloo processes on the CPU (default: one)")
    group.add_argument("--num_machines", default=1, type=int, help="machines of a multi-machine run")
    group.add_argument("--machine_rank", default=0, type=int, help="this machine's rank in a multi-machine run")
    group.add_argument("-o", "--occupy", action="store_true",
                       help="reserve GPU memory before training (CUDA only)")
    group.add_argument("--dist-backend", default=None,
                       help="distributed backend (default: the device policy's: nccl on CUDA, gloo on CPU)")
    group.add_argument("--dist-url", default=None, help="rendezvous URL for -d > 1 (default: a free local port)")
    group.add_argument("--cache", nargs="?", const="ram", default=None, help="cache images: ram | disk")
    group.add_argument("-l", "--logger", default="tensorboard", help="metric logger (tensorboard)")
    group.add_argument("--trust-ckpt", action="store_true",
                       help="allow checkpoints that need full unpickling (only for files you trust)")
    group.add_argument("--deterministic", action="store_true",
                       help="with a seed (exp field seed): repeatable kernels where the device has them (slower)")
    group.add_argument("--strict-data", action="store_true",
                       help="stop on a missing or corrupt image instead of skipping it (exp field strict_data)")
    group.add_argument("--time", default=None, type=duration_arg, metavar="DURATION",
                       help="wall-clock budget, e.g. 45m, 2h, 1h30m: epochs, warmup and the LR schedule are fitted "
                            "to it once the step is timed (with `max_epoch N` among the overrides, at most N epochs)")
    group.add_argument("opts", nargs=argparse.REMAINDER, default=None, help="KEY VALUE pairs to modify the exp")


def duration_arg(text: str) -> str:
    """argparse type of --time: the text itself once it parses as a duration."""
    try:
        parse_duration(text)
    except TimeBudgetError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def time_epoch_cap(opts: Optional[List[str]], exp) -> Optional[int]:
    """The most epochs a --time plan may choose: the exp's max_epoch when set on the command line, else None."""
    return int(exp.max_epoch) if "max_epoch" in (opts or [])[0::2] else None


def options_from_args(args: argparse.Namespace, exp, batch_size: int, started_at: float):
    """The RunOptions of a training command's flags (add_run_args) for `exp` at `batch_size` images per step,
    its clock started at `started_at` (wall time)."""
    from yolox.core.options import RunOptions  # lazy: yolox.core imports torch, which must start after prepare_environment

    return RunOptions(
        experiment_name=args.experiment_name or exp.exp_name, batch_size=int(batch_size), ckpt=args.ckpt,
        resume=bool(args.resume), start_epoch=args.start_epoch, devices=args.devices or 1,
        num_machines=args.num_machines, machine_rank=args.machine_rank,
        dist_backend=args.dist_backend, dist_url=args.dist_url, cache=args.cache, logger=args.logger,
        trust_ckpt=bool(args.trust_ckpt), occupy=bool(args.occupy),
        deterministic=bool(args.deterministic), time_budget_s=parse_duration(args.time) if args.time else None,
        max_epoch_cap=time_epoch_cap(args.opts, exp), started_at=started_at)


def policy_from_args(args: argparse.Namespace, local_rank: int = 0, world_size: int = 1, deterministic: bool = False,
                     time_budget_s: Optional[float] = None):
    """The device policy of this process from the flags of add_device_args (and, for a training run, its --time
    budget); unknown devices are a UserError."""
    from yolox.utils.device import build_policy  # lazy: it imports torch, which must start after prepare_environment

    return build_policy(args.device, fp16=args.fp16, bf16=args.bf16,
                        channels_last=SWITCH[args.channels_last], cudnn_benchmark=SWITCH[args.cudnn_benchmark],
                        compile_model=SWITCH[args.compile], fused_bn_act=SWITCH[args.fused_bn_act],
                        cache_release_every=args.cache_release_every, local_rank=local_rank,
                        world_size=world_size, deterministic=deterministic,
                        time_budget_s=time_budget_s)


def prepare_environment(argv: Optional[List[str]] = None) -> None:
    """Set the MPS environment variables before anything imports torch (torch reads them early)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--mps-high-watermark", type=float, default=None)
    known, _ = pre.parse_known_args(sys.argv[1:] if argv is None else argv)
    if sys.platform == "darwin" or known.mps_high_watermark is not None:
        setup_mps_environment(high_watermark_ratio=known.mps_high_watermark)
