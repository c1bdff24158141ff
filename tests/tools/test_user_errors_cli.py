"""User errors through the real tools: one line on stderr, exit status 2, no traceback (unless --debug or
YOLOX_DEBUG=1); and a training set with a missing and a corrupt image trains to the end, naming both."""
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.fixtures.tiny_coco import KILL_HOOK, TINY_MODEL, make_tiny_coco, write_exp_file
from tests.tools.conftest import REPO


def run_tool(tool: str, *args: str, cwd, debug_env: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("YOLOX_DEBUG", None)
    if debug_env:
        env["YOLOX_DEBUG"] = "1"
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{tool}.py"), *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=cwd)


def assert_one_line_user_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for text in expected:
        assert text in last, last


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_coco(tmp_path_factory.mktemp("tiny"), num_train=8, num_val=2, size=64)


def tiny_exp(tmp_path, data_dir, extra: str = "") -> str:
    return str(write_exp_file(tmp_path / "tiny_exp.py", data_dir, tmp_path / "out", max_epoch=1,
                              no_aug_epochs=0, extra=TINY_MODEL + KILL_HOOK + extra))


def test_bad_flag_is_one_line(tmp_path):
    result = run_tool("train", "--no-such-flag", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "unrecognized arguments: --no-such-flag" in result.stderr and "--help" in result.stderr


def test_missing_exp_file(tmp_path):
    assert_one_line_user_error(run_tool("eval", "-f", str(tmp_path / "none.py"), cwd=tmp_path),
                               "error: exp file", "none.py not found")


@pytest.mark.parametrize("opts, expected", [(["input_size", "100,100"], "multiples of 32"),
                                            (["max_epoch", "many"], "max_epoch='many' is not an integer")])
def test_bad_exp_value(tmp_path, tiny_data, opts, expected):
    assert_one_line_user_error(run_tool("train", "-f", tiny_exp(tmp_path, tiny_data), "--device", "cpu", *opts,
                                        cwd=tmp_path), expected)


@pytest.mark.parametrize("tool, args", [("train", ["-n", "yolox-nano"]), ("eval", ["-n", "yolox-nano"]),
                                        ("demo", ["image", "-n", "yolox-nano", "--path", "dog.jpg"]),
                                        ("check_device", ["--quick"])])
def test_unknown_device_is_one_line(tmp_path, tool, args):
    assert_one_line_user_error(run_tool(tool, *args, "--device", "tpu", cwd=tmp_path),
                               "unknown device 'tpu'", "use auto, cpu, cuda")


def test_debug_shows_the_traceback(tmp_path):
    for result in (run_tool("eval", "-f", "none.py", "--debug", cwd=tmp_path),
                   run_tool("eval", "-f", "none.py", cwd=tmp_path, debug_env=True)):
        assert result.returncode == 1 and "Traceback" in result.stderr and "ExpNotFoundError" in result.stderr


def test_bad_data_folder(tmp_path):
    exp = write_exp_file(tmp_path / "tiny_exp.py", tmp_path / "no_data", tmp_path / "out", extra=TINY_MODEL)
    assert_one_line_user_error(run_tool("train", "-f", str(exp), "-b", "4", "--device", "cpu", cwd=tmp_path),
                               "no_data not found", "set data_dir")


def test_malformed_annotation_file(tmp_path, tiny_data):
    data = tmp_path / "data"
    make_tiny_coco(data, num_train=2, num_val=1, size=64)
    (data / "annotations" / "instances_train2017.json").write_text('{"images": [')
    assert_one_line_user_error(run_tool("train", "-f", tiny_exp(tmp_path, data), "-b", "2", "--device", "cpu",
                                        cwd=tmp_path), "instances_train2017.json is not valid JSON")


def test_missing_and_unsafe_checkpoint(tmp_path, tiny_data):
    exp = tiny_exp(tmp_path, tiny_data)
    assert_one_line_user_error(run_tool("train", "-f", exp, "-b", "4", "--device", "cpu", "-c",
                                        str(tmp_path / "gone.pth"), cwd=tmp_path), "gone.pth", "not found")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": {}, "extra": argparse_namespace()}, unsafe)
    assert_one_line_user_error(run_tool("train", "-f", exp, "-b", "4", "--device", "cpu", "-c", str(unsafe),
                                        cwd=tmp_path), "unsafe.pth: refused to unpickle", "--trust-ckpt")


def argparse_namespace():
    import argparse

    return argparse.Namespace(lr=0.1)  # a pickled class: refused by weights-only loading


def test_our_own_bug_keeps_the_traceback(capsys):
    from yolox.utils.user_errors import UserError, run_cli

    def broken() -> None:
        raise KeyError("a bug of ours")

    with pytest.raises(KeyError):
        run_cli(broken)

    def user_mistake() -> None:
        raise UserError("data folder x not found:\n set data_dir")

    with pytest.raises(SystemExit) as info:
        run_cli(user_mistake)
    assert info.value.code == 2 and capsys.readouterr().err == "error: data folder x not found: set data_dir\n"


def test_reported_failure_exits_1_without_a_second_report(capsys, monkeypatch):
    from yolox.utils.user_errors import ReportedError, run_cli

    monkeypatch.delenv("YOLOX_DEBUG", raising=False)

    def already_logged() -> None:
        raise ReportedError("rank 1 was killed by SIGKILL")

    with pytest.raises(SystemExit) as info:
        run_cli(already_logged)
    assert info.value.code == 1 and capsys.readouterr().err == ""
    monkeypatch.setenv("YOLOX_DEBUG", "1")
    with pytest.raises(ReportedError):
        run_cli(already_logged)


def test_training_set_with_a_missing_and_a_corrupt_image_trains_to_the_end(tmp_path):
    data = make_tiny_coco(tmp_path / "data", num_train=8, num_val=2, size=64)
    (data / "train2017" / "000003.jpg").unlink()
    (data / "train2017" / "000005.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    exp = tiny_exp(tmp_path, data)
    result = run_tool("train", "-f", exp, "-b", "2", "--device", "cpu", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "out" / "tiny_exp" / "train_log.txt").read_text()
    assert "000003.jpg" in log and "000005.jpg" in log and "2 bad image(s) are skipped" in log
    assert "epoch: 1/1, iter: 2/3" in log and "Training of experiment is done" in log
    assert (tmp_path / "out" / "tiny_exp" / "latest_ckpt.pth").is_file()
    strict = run_tool("train", "-f", exp, "-b", "2", "--device", "cpu", "--strict-data", cwd=tmp_path)
    assert_one_line_user_error(strict, "1 missing (000003.jpg)", "1 corrupt (000005.jpg)", "--strict-data")
    cache = data / "annotations" / "instances_train2017.json.train.yolox_check"
    assert json.loads(cache.read_text())["result"]["missing"] == ["000003.jpg"]


def test_missing_annotation_file(tmp_path):
    data = tmp_path / "data"
    make_tiny_coco(data, num_train=2, num_val=1, size=64)
    (data / "annotations" / "instances_train2017.json").unlink()
    result = run_tool("train", "-f", tiny_exp(tmp_path, data), "-b", "2", "--device", "cpu", cwd=tmp_path)
    assert_one_line_user_error(result, "instances_train2017.json")


CRATER_ARGS = ["-f", str(REPO / "exps" / "crater" / "yolox_nano_crater.py"), "-c", "none", "--device", "cpu"]


@pytest.mark.parametrize("tool", ["train", "train_crater_device_aware"])
def test_a_typo_in_an_override_key_names_the_nearest_field(tmp_path, tiny_data, tool):
    head = ["-f", tiny_exp(tmp_path, tiny_data), "--device", "cpu"] if tool == "train" else \
        [*CRATER_ARGS, "--data-dir", str(tiny_data)]
    result = run_tool(tool, *head, "seed", "0", "max_epochs", "30", cwd=tmp_path)
    assert_one_line_user_error(result, "max_epochs is not an exp field; did you mean max_epoch?")


@pytest.mark.parametrize("tool", ["train", "train_crater_device_aware"])
@pytest.mark.parametrize("flag", ["-c", "-b"])
def test_a_short_flag_after_the_overrides_is_one_line(tmp_path, tiny_data, tool, flag):
    head = ["-f", tiny_exp(tmp_path, tiny_data), "--device", "cpu"] if tool == "train" else \
        [*CRATER_ARGS, "--data-dir", str(tiny_data)]
    result = run_tool(tool, *head, "output_dir", str(tmp_path / "out"), flag, "16", cwd=tmp_path)
    assert_one_line_user_error(result, f"{flag} comes after the KEY VALUE overrides")
