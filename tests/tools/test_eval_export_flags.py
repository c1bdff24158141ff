"""tools/eval.py on a trained checkpoint, tools/export_onnx.py, and every upstream flag on each tool."""
import argparse

import pytest
import torch

from tests.core.conftest import train_args
from tests.fixtures.tiny_coco import KILL_HOOK, TINY_MODEL, make_tiny_coco, write_exp_file
from tests.tools.conftest import load_tool

UPSTREAM_DESTS = {
    "train": {"experiment_name", "name", "dist_backend", "dist_url", "batch_size", "devices", "exp_file", "resume",
              "ckpt", "start_epoch", "num_machines", "machine_rank", "fp16", "cache", "occupy", "logger", "opts"},
    "eval": {"experiment_name", "name", "dist_backend", "dist_url", "batch_size", "devices", "num_machines",
             "machine_rank", "exp_file", "ckpt", "conf", "nms", "tsize", "seed", "fp16", "fuse", "trt", "legacy",
             "test", "speed", "opts"},
    "demo": {"demo", "experiment_name", "name", "path", "camid", "save_result", "exp_file", "ckpt", "device", "conf",
             "nms", "tsize", "fp16", "legacy", "fuse", "trt"},
    "export_onnx": {"output_name", "input", "output", "opset", "batch_size", "dynamic", "no_onnxsim", "exp_file",
                    "experiment_name", "name", "ckpt", "opts", "decode_in_inference"},
}


@pytest.mark.parametrize("tool", sorted(UPSTREAM_DESTS))
def test_every_upstream_flag_plus_device_and_trust_ckpt(tool):
    parser = load_tool(tool).make_parser()
    dests = {action.dest for action in parser._actions if not isinstance(action, argparse._HelpAction)}
    assert UPSTREAM_DESTS[tool] | {"device", "trust_ckpt"} <= dests


def test_train_flag_defaults_and_cache_const():
    args = load_tool("train").make_parser().parse_args(["-f", "x.py", "--cache", "--resume", "max_epoch", "3"])
    assert (args.batch_size, args.cache, args.resume, args.device, args.opts) == (64, "ram", True, "auto",
                                                                                  ["max_epoch", "3"])


# each command that takes a device, with the fewest arguments its parser accepts
DEVICE_COMMANDS = {"train": [], "train_crater_device_aware": [], "eval": [], "demo": ["image"], "export_onnx": [],
                   "detect_craters": ["--out", "out"]}


@pytest.mark.parametrize("tool", sorted(DEVICE_COMMANDS))
def test_every_device_command_shares_the_device_flags_with_device_auto(tool):
    parser = load_tool(tool).make_parser()
    args = parser.parse_args(DEVICE_COMMANDS[tool])
    assert args.device == "auto" and args.channels_last == "auto" and args.bf16 is None
    assert parser.parse_args([*DEVICE_COMMANDS[tool], "--fp16"]).fp16 is True


def test_inference_commands_stay_fp32_unless_asked_and_check_device_shares_the_flags():
    for tool in ("eval", "demo", "detect_craters"):
        assert load_tool(tool).make_parser().parse_args(DEVICE_COMMANDS[tool]).fp16 is False
    args = load_tool("check_device").parse_args(["--compile", "off"])
    assert args.device == "auto" and args.compile == "off"


@pytest.mark.parametrize("flags", [["--device", "cuda"], ["--fp16"], ["--bf16"]])
def test_export_onnx_refuses_what_cpu_tracing_cannot_do(flags):
    export = load_tool("export_onnx")
    args = export.make_parser().parse_args(["-n", "yolox-nano", *flags])
    with pytest.raises(SystemExit, match="ONNX export traces in fp32 on the CPU"):
        export.export(None, args)


@pytest.fixture
def trained(tmp_path):
    from yolox.core.trainer import Trainer
    from yolox.exp import get_exp
    from yolox.utils.device import build_policy

    data = make_tiny_coco(tmp_path / "data", num_train=8, num_val=4)
    exp_file = write_exp_file(tmp_path / "eval_exp.py", data, tmp_path / "out", max_epoch=1,
                              extra=TINY_MODEL + KILL_HOOK)
    trainer = Trainer(get_exp(str(exp_file)), train_args(experiment_name="tiny"), policy=build_policy("cpu"))
    trainer.train()
    return exp_file, trainer.file_name


def test_eval_tool_reads_training_checkpoints(trained):
    exp_file, out = trained
    eval_tool = load_tool("eval")
    for name in ("latest_ckpt.pth", "best_ckpt.pth", "last_epoch_ckpt.pth"):
        eval_tool.run(["-f", str(exp_file), "-c", f"{out}/{name}", "-b", "2", "--device", "cpu", "-expn", "tiny",
                       "--conf", "0.001"])
    log = open(f"{out}/val_log.txt").read()
    assert log.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all") == 3
    assert "per class AP" in log and "device policy: device = cpu" in log


def test_eval_tool_default_checkpoint_is_best_and_missing_file_is_named(trained, tmp_path):
    exp_file, out = trained
    eval_tool = load_tool("eval")
    eval_tool.run(["-f", str(exp_file), "-b", "2", "--device", "cpu", "-expn", "tiny", "--fuse"])
    assert f"loading checkpoint from {out}/best_ckpt.pth" in open(f"{out}/val_log.txt").read()
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        eval_tool.run(["-f", str(exp_file), "-c", str(tmp_path / "nothere.pth"), "--device", "cpu", "-expn", "tiny"])


def test_export_onnx_without_onnx_says_so(monkeypatch):
    export = load_tool("export_onnx")
    monkeypatch.setattr(export.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit, match="needs the 'onnx' package.*pip install onnx"):
        export.run(["-n", "yolox-nano"])


def test_export_onnx_traces_with_upstream_names(monkeypatch, tmp_path, real_nano_ckpt):
    from yolox.models.network_blocks import SiLU

    export = load_tool("export_onnx")
    calls = {}

    def fake_export(model, dummy, path, **kwargs):
        calls.update(model=model, shape=tuple(dummy.shape), path=path, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", fake_export)
    monkeypatch.setattr(export, "require_module", lambda name, why: None)
    out = tmp_path / "nano.onnx"
    export.run(["-n", "yolox-nano", "-c", str(real_nano_ckpt), "--output-name", str(out), "--dynamic",
                "--no-onnxsim", "--batch-size", "2"])
    assert calls["shape"] == (2, 3, 416, 416) and calls["path"] == str(out)
    assert calls["input_names"] == ["images"] and calls["output_names"] == ["output"]
    assert calls["dynamic_axes"] == {"images": {0: "batch"}, "output": {0: "batch"}}
    assert calls["opset_version"] == 11 and calls["model"].head.decode_in_inference is False
    modules = list(calls["model"].modules())
    assert any(isinstance(m, SiLU) for m in modules) and not any(isinstance(m, torch.nn.SiLU) for m in modules)
