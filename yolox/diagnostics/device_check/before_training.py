"""Before training on a Mac: run the quick part of the device check when this machine has no report yet."""
from __future__ import annotations

import time
from typing import Callable

from loguru import logger

from yolox.diagnostics.device_check.report import build_report, table
from yolox.diagnostics.device_check.runner import CheckPlan, run_checks
from yolox.utils.device import DevicePolicy
from yolox.utils.device.selfcheck_report import CHECK_COMMAND, quick_check_needed, report_path, write_report


def run_quick_check(policy: DevicePolicy) -> dict:
    """Run the quick check (forward, losses, assignment, decode + NMS: seconds) under `policy`, log its table and
    verdict, cache the report for this device and torch; returns the report."""
    start = time.monotonic()
    results = run_checks(CheckPlan(policy=policy, quick=True), progress=logger.debug)
    report = build_report(results, policy, None, "not checked by the quick check", True, time.monotonic() - start)
    path = write_report(report, report_path(policy.kind))
    logger.info(f"device check (quick) on {policy.device}:\n{table(results)}")
    log = logger.info if report["passed"] else logger.warning
    log(f"device check: {report['verdict']} (report {path}; the full check: {CHECK_COMMAND})")
    return report


def checked_policy(make_policy: Callable[[], DevicePolicy]) -> DevicePolicy:
    """The run's policy from `make_policy()`; on MPS with no report for this machine and torch, the quick check
    runs first (and says so), its report is cached, and the policy is built again so it acts on the report."""
    policy = make_policy()
    if not quick_check_needed(policy):
        return policy
    logger.info(f"no device check report for {policy.kind} with this torch: running the quick device check "
                f"before training (seconds)")
    run_quick_check(policy)
    return make_policy()
