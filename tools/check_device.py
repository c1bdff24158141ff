#!/usr/bin/env python3
"""Check that this machine's device computes what the CPU computes, part by part, and keep the report.

With fixed weights (a seeded yolox-nano) and a few generated crater images, each part of training and evaluation
runs on the device and on the CPU: forward (train and eval mode), each loss term, the SimOTA assignment,
gradients, one SGD and one AdamW step, the EMA update, decoding + NMS, the AP of a full evaluation; then the same
under the mixed precision the device policy would choose; then training iterations across the multi-scale sizes
watching device memory. Prints a table and a verdict, writes a JSON report (paste it into an issue), and keeps it
in the user cache, where the device policy reads it: a failed check becomes a decision (AMP off, a part on the
CPU, more frequent cache releases). Exit status 0 when every check passes, 1 otherwise, 2 for bad arguments.

    python tools/check_device.py                      # the best device here (CUDA, MPS, else CPU)
    python tools/check_device.py --device mps --out device_check.json
    python tools/check_device.py --quick              # forward, losses, assignment, decode + NMS: seconds
"""
import argparse
import time
from typing import List, Optional

from loguru import logger

from yolox.cli.flags import add_device_args
from yolox.diagnostics.device_check import CheckPlan, build_report, run_checks, table
from yolox.utils.device import build_policy
from yolox.utils.device.selfcheck_report import report_path, write_report
from yolox.utils.user_errors import CLIParser, run_cli


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = CLIParser("check_device", description="compare this machine's device with its CPU, part by part")
    parser.add_argument("--out", default=None, help="also write the JSON report here (to paste into an issue)")
    parser.add_argument("--quick", action="store_true",
                        help="only forward, losses, assignment and decode + NMS (seconds)")
    add_device_args(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    start = time.monotonic()
    # The check's own policies ignore any earlier report: it measures the device as it is.
    policy = build_policy(args.device, self_check=False)
    # the mixed precision a user would get by asking for it (CPU: none, the policy's default says why)
    amp_policy = policy if policy.kind == "cpu" else build_policy(args.device, fp16=True, self_check=False)
    plan = CheckPlan(policy=policy, amp_dtype=amp_policy.amp_dtype, amp_reason=amp_policy.reasons["amp_dtype"],
                     quick=args.quick)
    logger.info(f"device check of {policy.device} against the CPU{' (quick)' if args.quick else ''}")
    results = run_checks(plan)
    report = build_report(results, policy, plan.amp_dtype, plan.amp_reason, args.quick, time.monotonic() - start)
    print(table(results))
    print(report["verdict"] + f"  ({report['wall_s']:.0f} s)")
    cached = write_report(report, report_path(policy.kind))
    print(f"report kept in {cached} (the device policy reads it)")
    if args.out:
        print(f"report written to {write_report(report, args.out)}: paste it into an issue")
    return 0 if report["passed"] else 1


def cli() -> None:
    """The `yolox-check-device` command: main() with user errors as one line and exit status 2."""
    run_cli(main)


if __name__ == "__main__":
    cli()
