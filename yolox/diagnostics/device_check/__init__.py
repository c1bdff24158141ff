"""The device check: each part of training and evaluation run on a device and on the CPU, and compared.

`run_checks(CheckPlan(policy, ...))` gives one CheckResult per check; `build_report` turns them into the JSON the
device policy reads back (yolox.utils.device.selfcheck_report); `checked_policy` runs the quick part before
training on a Mac that has no report yet. Modules: fixture (fixed model and craters), bench (shared inputs,
injected faults), compare, tolerances, parts, evaluation, memory_watch, runner, report, before_training.
"""
from yolox.diagnostics.device_check.bench import Faults
from yolox.diagnostics.device_check.before_training import checked_policy, run_quick_check
from yolox.diagnostics.device_check.compare import CheckResult
from yolox.diagnostics.device_check.report import build_report, table, verdict_line
from yolox.diagnostics.device_check.runner import CheckPlan, run_checks

__all__ = ["CheckPlan", "CheckResult", "Faults", "build_report", "checked_policy", "run_checks", "run_quick_check",
           "table", "verdict_line"]
