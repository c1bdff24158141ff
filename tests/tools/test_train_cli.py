"""End to end on the CPU: tools/train.py with a user-style exp file and the real YOLOX model, then
tools/eval.py on each checkpoint it wrote (about 1.5 minutes on a 2-core CPU; kept in CI on purpose)."""
import os
import subprocess
import sys

import torch

from tests.fixtures.tiny_coco import make_tiny_coco, write_exp_file
from tests.tools.conftest import REPO, load_tool
from yolox.cli.flags import policy_from_args


def test_train_cli_trains_evaluates_and_saves(tmp_path):
    data = make_tiny_coco(tmp_path / "data", num_train=8, num_val=4)
    exp_file = write_exp_file(tmp_path / "my_exp.py", data, tmp_path / "out", max_epoch=2, no_aug_epochs=1)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    train = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "-f", str(exp_file), "-b", "4",
                            "--device", "cpu"], capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-4000:]
    out = tmp_path / "out" / "my_exp"
    for name in ("latest_ckpt.pth", "best_ckpt.pth", "last_epoch_ckpt.pth"):
        assert (out / name).is_file(), name
    log = (out / "train_log.txt").read_text()
    # the table is logged with or without detections (a 2-epoch run may detect nothing)
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all" in log and "per class AP" in log
    assert "epoch: 2/2, iter: 2/2" in log and "Training of experiment is done" in log
    ckpt = torch.load(out / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 2 and "head.cls_preds.0.weight" in ckpt["model"]

    for name in ("latest_ckpt.pth", "best_ckpt.pth", "last_epoch_ckpt.pth"):
        evaluation = subprocess.run([sys.executable, str(REPO / "tools" / "eval.py"), "-f", str(exp_file),
                                     "-c", str(out / name), "-b", "4", "--device", "cpu"],
                                    capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert evaluation.returncode == 0, evaluation.stderr[-4000:]
    assert (out / "val_log.txt").read_text().count("AP50:95") == 3


def test_compile_flags_reach_the_device_policy():
    train = load_tool("train")
    on = policy_from_args(train.make_parser().parse_args(["--device", "cpu", "--compile", "on"]))
    default = policy_from_args(train.make_parser().parse_args(["--device", "cpu"]))
    assert on.compile_model and not default.compile_model
    crater = load_tool("train_crater_device_aware")
    assert policy_from_args(crater.make_parser().parse_args(["--device", "cpu", "--compile", "on"])).compile_model
    assert not policy_from_args(crater.make_parser().parse_args(["--device", "cpu"])).compile_model


def test_the_training_commands_import_no_torch_before_they_set_the_mps_environment():
    # torch reads PYTORCH_ENABLE_MPS_FALLBACK when it is first imported: the commands set it in main() first
    code = ("import sys, yolox.tools.train, yolox.tools.train_crater_device_aware, yolox.cli.flags; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
