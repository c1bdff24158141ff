"""The device check's report as the policy reads it: each failed check becomes a decision with its reason."""
import json
import platform

import pytest
import torch

from tests.conftest import loguru_messages
from yolox.utils.device import MemoryBackend, build_policy
from yolox.utils.device.selfcheck_report import (
    REPORT_FORMAT,
    cache_dir,
    quick_check_needed,
    report_path,
    write_report,
)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def make_report(kind, failed=(), torch_version=None):
    """A report in the device check's format; `failed` holds (name, part, amp) of the checks that failed."""
    rows = [{"name": "forward, eval mode", "part": "forward", "amp": False, "passed": True}]
    rows += [{"name": name, "part": part, "amp": amp, "passed": False} for name, part, amp in failed]
    machine = {"system": platform.system(), "machine": platform.machine(), "torch": torch_version or torch.__version__}
    return {"format": REPORT_FORMAT, "kind": kind, "machine": machine, "checks": rows}


def mps(**kwargs):
    return build_policy("mps", tensors_on="cpu", memory=MemoryBackend(), **kwargs)


def test_no_report_changes_nothing_and_says_why():
    policy = mps()
    assert policy.self_check is None and "simulated" in policy.reasons["self_check"]
    assert not (policy.assign_on_cpu or policy.loss_on_cpu or policy.postprocess_on_cpu)
    assert policy.cache_release_every == mps(self_check=False).cache_release_every


def test_failed_amp_check_turns_mixed_precision_off_with_its_reason():
    report = make_report("cuda", [("gradients (float16)", "gradients", True)])
    assert build_policy("cuda", tensors_on="cpu", fp16=True).amp_dtype == torch.float16
    with loguru_messages("WARNING") as warnings:
        policy = build_policy("cuda", tensors_on="cpu", fp16=True, self_check=report)
    assert policy.amp_dtype is None and policy.grad_scaler is False
    assert "mixed precision off" in policy.reasons["amp_dtype"] and "gradients (float16)" in policy.reasons["amp_dtype"]
    assert any("mixed precision turned off" in message for message in warnings)
    assert not policy.loss_on_cpu  # an AMP loss failure is about AMP, not the fp32 loss


@pytest.mark.parametrize("part, decision", [("assignment", "assign_on_cpu"), ("loss", "loss_on_cpu"),
                                            ("postprocess", "postprocess_on_cpu")])
def test_a_part_that_disagrees_runs_on_the_cpu(part, decision):
    policy = mps(self_check=make_report("mps", [(f"{part}: x", part, False)]))
    assert getattr(policy, decision) is True
    assert f"{part}: x" in policy.reasons[decision] and "runs on the CPU" in policy.reasons[decision]
    others = {"assign_on_cpu", "loss_on_cpu", "postprocess_on_cpu"} - {decision}
    assert not any(getattr(policy, name) for name in others)
    assert "failed: " + f"{part}: x" in policy.reasons["self_check"]


def test_memory_growth_shortens_the_cache_release_cadence():
    report = make_report("mps", [("training: memory growth (mps, MiB)", "memory", False)])
    default = mps().cache_release_every
    policy = mps(self_check=report)
    assert 0 < policy.cache_release_every < default and "memory grew" in policy.reasons["cache_release_every"]
    cpu_report = make_report("cpu", [("training: memory growth (cpu, MiB)", "memory", False)])
    assert build_policy("cpu").cache_release_every == 0
    assert build_policy("cpu", self_check=cpu_report).cache_release_every > 0


def test_an_explicit_cadence_wins_over_the_report():
    report = make_report("mps", [("training: memory growth (mps, MiB)", "memory", False)])
    assert mps(self_check=report, cache_release_every=25).cache_release_every == 25


def test_a_failure_no_decision_can_work_around_is_a_warning():
    with loguru_messages("WARNING") as warnings:
        mps(self_check=make_report("mps", [("gradients", "gradients", False)]))
    assert any("gradients disagreeing with the CPU" in message for message in warnings)


@pytest.mark.parametrize("report, why", [
    (make_report("mps", [("assignment: matched boxes", "assignment", False)], torch_version="1.0.0"), "torch 1.0.0"),
    (make_report("cuda", [("assignment: matched boxes", "assignment", False)]), "not 'mps'"),
])
def test_a_report_for_another_torch_or_device_is_ignored(report, why):
    with loguru_messages("WARNING") as warnings:
        policy = mps(self_check=report)
    assert policy.assign_on_cpu is False and policy.self_check is None
    assert why in policy.reasons["self_check"] and any("ignored" in message for message in warnings)


def test_the_cached_report_is_read_for_the_real_device_only(private_cache):
    write_report(make_report("cpu", [("loss: iou", "loss", False)]), report_path("cpu"))
    assert cache_dir() == private_cache / "yolox" / "device_check"
    policy = build_policy("cpu")
    assert policy.loss_on_cpu is True and policy.self_check == str(report_path("cpu"))
    assert build_policy("cpu", self_check=False).loss_on_cpu is False


def test_quick_check_needed_on_mps_without_a_report_only():
    assert quick_check_needed(mps()) is True
    assert quick_check_needed(build_policy("cpu")) is False
    write_report(make_report("mps"), report_path("mps"))
    assert quick_check_needed(mps()) is False
    write_report(make_report("mps", torch_version="1.0.0"), report_path("mps"))
    assert quick_check_needed(mps()) is True


def test_report_write_is_atomic_and_round_trips(tmp_path):
    path = write_report(make_report("cpu"), tmp_path / "deep" / "report.json")
    assert json.loads(path.read_text())["kind"] == "cpu"
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_an_unreadable_cached_report_is_ignored_with_a_warning():
    report_path("cpu").parent.mkdir(parents=True)
    report_path("cpu").write_text("{not json")
    with loguru_messages("WARNING") as warnings:
        policy = build_policy("cpu")
    assert policy.self_check is None and any("unreadable" in message for message in warnings)
