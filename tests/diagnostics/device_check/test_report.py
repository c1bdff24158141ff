"""The check's table, verdict and JSON report, and the quick check before training on a Mac."""
import json
import math

import pytest

from yolox.diagnostics.device_check import build_report, checked_policy, table, verdict_line
from yolox.diagnostics.device_check import before_training
from yolox.diagnostics.device_check.compare import check, skip
from yolox.utils.device import MemoryBackend, build_policy
from yolox.utils.device.selfcheck_report import read_report, report_path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def results():
    return [check("forward, eval mode", "forward", 1e-4, 2e-3),
            check("loss: iou", "loss", math.nan, 5e-4),
            skip("gradients (amp)", "gradients", 0.05, "no mixed precision", amp=True)]


def test_nan_differences_fail_and_the_verdict_names_them():
    rows = results()
    assert [row.verdict for row in rows] == ["pass", "FAIL", "skipped"]
    line = verdict_line(rows, "mps")
    assert line.startswith("FAIL") and "loss: iou" in line and "1 of 2" in line and "1 skipped" in line


def test_table_shows_each_row_and_each_skip_reason_once():
    text = table(results())
    assert "non-finite" in text and "FAIL" in text and text.count("skipped: no mixed precision") == 1


def test_report_is_plain_json_with_machine_and_every_figure():
    policy = build_policy("cpu", self_check=False)
    report = build_report(results(), policy, None, "AMP off", quick=False, wall_s=1.23)
    loaded = json.loads(json.dumps(report, allow_nan=False))
    assert loaded["passed"] is False and loaded["machine"]["torch"] and loaded["memory"]["measures"] == "process RSS"
    assert [row["difference"] for row in loaded["checks"]] == [1e-4, "inf", None]


def test_checked_policy_runs_the_quick_check_once_and_acts_on_its_report(monkeypatch):
    runs = []
    monkeypatch.setattr(before_training, "run_checks",
                        lambda plan, progress: runs.append(plan.quick) or [check("loss: iou", "loss", 1.0, 5e-4)])

    def make_policy():
        return build_policy("mps", tensors_on="cpu", memory=MemoryBackend(),
                            self_check=read_report(report_path("mps")) or False)

    policy = checked_policy(make_policy)
    assert runs == [True] and policy.loss_on_cpu is True
    assert read_report(report_path("mps"))["quick"] is True
    assert checked_policy(make_policy).loss_on_cpu is True and runs == [True]


def test_checked_policy_off_mps_runs_nothing(monkeypatch):
    monkeypatch.setattr(before_training, "run_checks", lambda plan, progress: pytest.fail("no check expected"))
    assert checked_policy(lambda: build_policy("cpu")).kind == "cpu"
