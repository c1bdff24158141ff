#!/usr/bin/env python3
"""Train a YOLOX model on CUDA, Apple MPS or CPU (the device layer decides the details)."""
import argparse
import functools
import time
from typing import List, Optional

from yolox.cli.flags import add_device_args, add_run_args, options_from_args, policy_from_args, prepare_environment
from yolox.utils.started import process_started_at
from yolox.utils.user_errors import CLIParser, run_cli


def make_parser() -> argparse.ArgumentParser:
    parser = CLIParser("YOLOX train parser")
    parser.add_argument("-n", "--name", type=str, default=None, help="model name")
    parser.add_argument("-b", "--batch-size", type=int, default=64, help="total batch size over all processes")
    add_device_args(parser)
    add_run_args(parser)
    return parser


def main(argv: Optional[List[str]] = None, started_at: Optional[float] = None) -> None:
    """Parse the flags, build the exp, its options and the device policy once, and train. `started_at` starts
    the run's clock (--time): the command passes its process's start; a call from Python, the call's time."""
    started_at = started_at or time.time()
    prepare_environment(argv)
    args = make_parser().parse_args(argv)
    # imported after prepare_environment: torch reads the MPS environment variables when it is first imported
    from yolox.core.run import train
    from yolox.diagnostics.device_check.before_training import checked_policy
    from yolox.exp import check_exp_value, get_exp
    from yolox.utils.setup_env import configure_module

    configure_module()
    exp = get_exp(args.exp_file, args.name)
    exp.merge(args.opts)
    exp.strict_data = exp.strict_data or args.strict_data
    check_exp_value(exp)
    options = options_from_args(args, exp, args.batch_size, started_at)
    rank_policy = functools.partial(policy_from_args, args, deterministic=options.deterministic,
                                    time_budget_s=options.time_budget_s)
    policy = checked_policy(lambda: rank_policy(world_size=options.devices))
    train(exp, options, policy, rank_policy)


def cli() -> None:
    """The `yolox-train` command: main() with user errors as one line and exit status 2."""
    run_cli(lambda: main(started_at=process_started_at()))


if __name__ == "__main__":
    cli()
