"""tools/check_device.py: the quick check on the CPU passes, writes its report twice (cache, --out), exit codes."""
import json

import pytest

from tests.tools.conftest import load_tool
from yolox.utils.device.selfcheck_report import report_path
from yolox.utils.user_errors import UserError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_quick_check_on_the_cpu_passes_and_keeps_its_report(tmp_path, capsys):
    tool = load_tool("check_device")
    out = tmp_path / "report.json"
    assert tool.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "largest difference" in printed and "PASS: cpu agrees with the CPU" in printed
    report = json.loads(out.read_text())
    assert report["passed"] and report["quick"] and report["kind"] == "cpu"
    assert {"system", "torch", "device_name"} <= set(report["machine"])
    assert json.loads(report_path("cpu").read_text()) == report
    names = [row["name"] for row in report["checks"] if row["verdict"] == "pass"]
    assert "assignment: matched boxes" in names and "decode + NMS: boxes" in names


def test_an_unknown_device_is_a_user_error():
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        load_tool("check_device").main(["--device", "tpu", "--quick"])
