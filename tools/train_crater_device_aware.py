#!/usr/bin/env python3
"""Train YOLOX on impact craters with whatever this machine has (CUDA, Apple MPS or CPU).

The device layer decides precision, loader and distributed settings; the batch size is measured,
not guessed; progress is logged with an ETA; the run ends with PNGs of its curves and predictions.
With no data at datasets/craters a synthetic crater set is generated there, so a fresh checkout
trains without downloading anything:

    python tools/train_crater_device_aware.py --demo                 # minutes on a laptop CPU
    python tools/train_crater_device_aware.py -b 16 -c weights/yolox_m.pth
"""
import argparse
import time
from typing import List, Optional

from yolox.cli.flags import add_device_args, add_run_args, prepare_environment
from yolox.utils.started import process_started_at
from yolox.utils.user_errors import CLIParser, run_cli

EPILOG = ("Without -f: exps/crater/yolox_m_crater.py when fine-tuning from -c weights; from scratch "
          "(-c none or no -c) the size that suits the data (yolox_s_crater.py or yolox_m_crater.py); "
          "--demo: exps/crater/yolox_nano_crater_demo.py. Weights: -c weights/yolox_m.pth (see weights/README.md).")


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("train_crater_device_aware", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    add_device_args(parser)
    add_run_args(parser)
    crater = parser.add_argument_group("crater workflow")
    crater.add_argument("-b", "--batch-size", default="auto",
                        help="total batch size, or 'auto' (the default) to measure the largest that fits")
    crater.add_argument("--target-mem-fraction", type=float, default=0.8,
                        help="-b auto: fraction of the device's memory limit the batch may use (default 0.8)")
    crater.add_argument("--max-batch", type=int, default=None,
                        help="-b auto: upper bound of the batch (default: the exp's max_batch, else 64)")
    crater.add_argument("--grad-ckpt", action="store_true",
                        help="activation checkpointing of backbone and neck: less memory, their forward "
                             "recomputed in backward (exp field grad_ckpt)")
    crater.add_argument("--eval-batch", type=int, default=None, help="evaluation batch (default 2x training)")
    crater.add_argument("--data-dir", default=None,
                        help="crater data (COCO, YOLO-txt or crater CSV; default: the exp's, datasets/craters)")
    crater.add_argument("--recipe", choices=("auto", "exp"), default="auto",
                        help="auto (default): the from-scratch or fine-tuning plan sets what the command line does "
                             "not; exp: the exp file's settings as written")
    crater.add_argument("--demo", action="store_true",
                        help="short run: nano on a synthetic crater set, ends with AP50 in minutes on a CPU")
    return parser


def main(argv: Optional[List[str]] = None, policy=None, started_at: Optional[float] = None) -> dict:
    """Plan the crater run, train it, report it; `policy` replaces the device policy built from the flags (tests
    simulate MPS this way). `started_at` starts the run's clock (--time): the command passes its process's start;
    a call from Python, the call's time. Returns rank 0's figures and the run summary."""
    started_at = started_at or time.time()
    prepare_environment(argv)
    args = make_parser().parse_args(argv)
    # imported after prepare_environment: torch reads the MPS environment variables when it is first imported
    from yolox.core.run import train
    from yolox.crater.report import crater_figures
    from yolox.crater.workflow import plan_crater_run
    from yolox.utils.setup_env import configure_module

    configure_module()
    plan = plan_crater_run(args, policy, started_at)
    started = time.time()
    trainer = train(plan.exp, plan.options, plan.policy, plan.rank_policy)
    return crater_figures(plan.run_dir, trainer, plan.exp.max_epoch, plan.options.batch_size, time.time() - started)


def cli() -> None:
    """The `yolox-train-craters` command: main() with user errors as one line and exit status 2."""
    run_cli(lambda: main(started_at=process_started_at()))


if __name__ == "__main__":
    cli()
