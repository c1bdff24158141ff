"""yolox.crater.workflow: a simulated-MPS run, the missing-weights error, the batch, the demo's fields."""
import json
import time
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import loguru_messages
from tests.crater.runs import NANO_EXP, crater_main, tiny_run_argv
from tests.tools.conftest import load_tool
from tests.utils.test_autobatch import FakeClock, FakeMemory, FormulaDetector, StepFormula
from yolox.crater import workflow
from yolox.crater.report import log_plan
from yolox.exp import get_exp
from yolox.synthetic.craters import generate_synthetic_craters
from yolox.utils.device import build_policy
from yolox.utils.user_errors import UserError

CUDA_ENTRY_POINTS = ("synchronize", "empty_cache", "memory_allocated", "max_memory_allocated",
                     "reset_peak_memory_stats", "set_device", "current_device", "Stream", "get_device_properties")


@pytest.fixture
def no_cuda(monkeypatch):
    """Every torch.cuda entry point raises: the MPS path must never reach for CUDA."""
    def refusing(name):
        def refuse(*args, **kwargs):
            raise AssertionError(f"torch.cuda.{name} used on the MPS path")
        return refuse

    for name in CUDA_ENTRY_POINTS:
        monkeypatch.setattr(torch.cuda, name, refusing(name))  # one object each: torch._dynamo indexes them
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_simulated_mps_run_logs_its_decisions_and_the_measured_batch(tmp_path, monkeypatch, no_cuda, one_thread):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=16, num_val=2, img_size=64, seed=0)
    policy = build_policy("mps", tensors_on="cpu")
    figures = crater_main(tiny_run_argv(tmp_path / "data", tmp_path / "out", "-b", "auto"), policy=policy)
    log = (tmp_path / "out" / "yolox_nano_crater" / "train_log.txt").read_text()
    assert "crater plan: device: cpu (rules: mps)" in log
    assert "crater plan: AMP: off" in log
    assert "crater plan: DDP: off" in log
    assert "crater plan: pin_memory: off" in log
    assert "crater plan: cache release every: 10" in log
    # the batch came from the measurement: the probe table and the reason are logged
    assert "autobatch on mps" in log and "peak MiB" in log
    assert "crater plan: batch: 2  (batch 2: smallest measured batch within 10% of the best" in log
    # from scratch in a short schedule: AdamW at 0.0025 x sqrt(2 / 16)
    assert "learning rate: 8.839e-04" in log and "optimizer_type: 'adamw'" in log
    # and the stride-4 level, decided before the batch measurement built the model
    assert "p2_head: True  (from scratch: the stride-4 level" in log
    assert "img/s" in log
    assert 0.0 <= figures["AP50"] <= 1.0
    for plot in figures["plots"]:
        assert Path(plot).stat().st_size > 1000


def test_missing_weights_name_the_official_url_and_scratch_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as error:
        crater_main(["-c", "weights/yolox_m.pth"])
    message = str(error.value)
    assert "weights/yolox_m.pth not found" in message
    assert "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_m.pth" in message
    assert "-c none" in message


def test_given_data_dir_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="--data-dir .*missing_folder not found"):
        crater_main(["-c", "none", "--data-dir", str(tmp_path / "missing_folder"),
                            "output_dir", str(tmp_path / "out")])


def test_batch_argument_parsing():
    assert workflow.parse_batch("auto") is None and workflow.parse_batch("16") == 16
    with pytest.raises(UserError, match="positive number or 'auto'"):
        workflow.parse_batch("many")
    with pytest.raises(UserError, match="at least 1"):
        workflow.parse_batch("0")


def formula_exp(memory: FakeMemory, clock: FakeClock, **fields) -> SimpleNamespace:
    """An exp whose training step costs 200 MiB + 50 MiB and 0.02 s + 1 ms per image (img/s grows with the batch)."""
    return SimpleNamespace(get_model=lambda: FormulaDetector(StepFormula(memory, clock)), input_size=(32, 32),
                           num_classes=1, max_labels=5, max_batch=64, **fields)


def batch_args(batch_size: str, max_batch=None) -> SimpleNamespace:
    return SimpleNamespace(batch_size=batch_size, max_batch=max_batch, target_mem_fraction=0.8, time=None)


@pytest.mark.parametrize("world_size, max_batch, per_device", [(1, 256, 56), (2, 256, 56), (2, 16, 8)])
def test_auto_batch_is_measured_per_device_and_multiplied_by_the_world_size(world_size, max_batch, per_device):
    memory, clock = FakeMemory(4000 << 20), FakeClock()
    policy = build_policy("cpu", memory=memory)
    exp = formula_exp(memory, clock, basic_lr_per_img=0.01)
    # (0.8 x 4000 - 200) / 50 = 60 images per device -> 56, also the fastest; --max-batch caps the total batch
    batch, decision = workflow.choose_batch(exp, batch_args("auto", max_batch), policy, world_size,
                                            label_stats=(3, 100_000), clock=clock)
    assert (decision.batch_size, batch) == (per_device, per_device * world_size)
    with loguru_messages("INFO") as messages:
        log_plan(policy, batch, decision, exp, world_size)
    line = next(message for message in messages if message.startswith("crater plan: batch: "))
    expected = (f"batch: {batch}  (" if world_size == 1 else
                f"batch: per device {per_device} x {world_size} devices = {batch}  (measured once on cpu")
    assert line.startswith(f"crater plan: {expected}"), line


def test_requested_batch_is_split_over_the_devices_and_must_divide():
    memory, clock = FakeMemory(4000 << 20), FakeClock()
    policy = build_policy("cpu", memory=memory)
    exp = formula_exp(memory, clock)
    args = batch_args("16")
    batch, decision = workflow.choose_batch(exp, args, policy, 2, label_stats=(3, 1000), clock=clock)
    assert (batch, decision.batch_size) == (16, 8) and decision.reason.startswith("-b 8 as requested")
    args.batch_size = "15"
    with pytest.raises(UserError, match="-b 15 with -d 2: give a multiple of 2"):
        workflow.choose_batch(exp, args, policy, 2, label_stats=(3, 1000))


def test_eval_tool_on_best_ckpt_reproduces_the_best_figure(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=16, num_val=4, img_size=64, seed=0)
    argv = tiny_run_argv(tmp_path / "data", tmp_path / "out", "-b", "4", "--device", "cpu")
    argv[argv.index("max_epoch") + 1] = "3"
    # a few steps from scratch score below the usual threshold: keep every box so that AP is not 0
    argv += ["test_conf", "1e-6"]
    crater_main(argv)
    run_dir = tmp_path / "out" / "yolox_nano_crater"
    best = json.loads((run_dir / "run_summary.json").read_text())["best"]
    assert best["AP50"] > 0  # a figure of 0 would match any checkpoint
    load_tool("eval").run(["-f", NANO_EXP, "-c", str(run_dir / "best_ckpt.pth"), "-b", "4", "--device", "cpu",
                           "data_dir", str(tmp_path / "data"), "test_size", "(64,64)", "test_conf", "1e-6",
                           "output_dir", str(tmp_path / "out")])
    figures = re.findall(r"AP50:95 ([0-9.]+), AP50 ([0-9.]+)", (run_dir / "val_log.txt").read_text())
    assert [float(value) for value in figures[-1]] == [round(best["AP50:95"], 6), round(best["AP50"], 6)]


def test_the_exps_synthetic_data_and_batch_cap_are_used(tmp_path):
    exp = get_exp(NANO_EXP)
    exp.data_dir, exp.synthetic_data = str(tmp_path / "generated"), dict(num_train=3, num_val=1, img_size=64)
    workflow.ensure_data(exp, data_dir_given=False)
    coco = json.loads((tmp_path / "generated" / "annotations" / "instances_train2017.json").read_text())
    assert len(coco["images"]) == 3

    memory, clock = FakeMemory(4000 << 20), FakeClock()
    policy = build_policy("cpu", memory=memory)
    exp = formula_exp(memory, clock)
    exp.max_batch = 8
    args = batch_args("auto")
    assert workflow.choose_batch(exp, args, policy, 1, label_stats=(3, 100_000), clock=clock)[0] == 8   # 56 fit
    args.max_batch = 16
    assert workflow.choose_batch(exp, args, policy, 1, label_stats=(3, 100_000), clock=clock)[0] == 16


def test_demo_is_an_exp_file_that_keeps_its_own_schedule():
    args = SimpleNamespace(exp_file=None, demo=True, ckpt=None, resume=False)
    exp_file, reason = workflow.choose_exp_file(args, "unused", "auto")
    assert Path(exp_file) == workflow.DEMO_EXP and reason == "--demo"
    demo = get_exp(exp_file)
    assert demo.exp_name == "yolox_nano_crater_demo" and demo.scratch_recipe is False
    assert demo.max_batch == 8 and demo.synthetic_data["num_train"] == 128
    assert workflow.choose_exp_file(SimpleNamespace(**dict(vars(args), exp_file=NANO_EXP)), "unused", "auto") == (
        NANO_EXP, "given with -f")


def test_grad_ckpt_flag_reaches_the_model_of_a_crater_exp_and_refuses_other_exps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parser = load_tool("train_crater_device_aware").make_parser()
    exp, _ = workflow.build_exp(parser.parse_args(["-f", NANO_EXP, "-c", "none", "--grad-ckpt"]))
    assert exp.grad_ckpt and type(exp.get_model().backbone.C3_p4).__name__ == "CheckpointedCSPLayer"
    plain = tmp_path / "plain_exp.py"
    plain.write_text("from yolox.exp import Exp as Base\n\n\nclass Exp(Base):\n    pass\n")
    with pytest.raises(UserError, match="--grad-ckpt: the exp .*plain_exp.py has no grad_ckpt field"):
        workflow.build_exp(parser.parse_args(["-f", str(plain), "-c", "none", "--grad-ckpt"]))


def test_a_timed_scratch_run_prices_the_stride_4_level_and_ends_inside_its_budget(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=16, num_val=2, img_size=64, seed=0)
    argv = tiny_run_argv(tmp_path / "data", tmp_path / "out", "-b", "auto", "--device", "cpu", "--time", "25s")
    del argv[argv.index("max_epoch"):argv.index("max_epoch") + 2]     # the budget plans the epochs
    started = time.time()
    crater_main(argv)
    run_dir = tmp_path / "out" / "yolox_nano_crater"
    log = (run_dir / "train_log.txt").read_text()
    assert re.search(r"p2_head: (True|False)  \(.*a step takes [0-9.]+ s with it, [0-9.]+ s without", log)
    wall = json.loads((run_dir / "wall_clock.json").read_text())
    assert wall["wall_s"] <= 25.0 and time.time() - started < 25.0 * 1.05
