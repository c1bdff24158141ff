"""tools/train_crater_device_aware.py: a simulated-MPS run, the missing-weights error, argument handling."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from yolox.crater.synthetic import generate_synthetic_craters
from yolox.utils.device import build_policy

REPO = Path(__file__).resolve().parents[2]
NANO_EXP = str(REPO / "exps" / "crater" / "yolox_nano_crater.py")
CUDA_ENTRY_POINTS = ("synchronize", "empty_cache", "memory_allocated", "max_memory_allocated",
                     "reset_peak_memory_stats", "set_device", "current_device", "Stream", "get_device_properties")


def load_script():
    spec = importlib.util.spec_from_file_location("train_crater_device_aware",
                                                  REPO / "tools" / "train_crater_device_aware.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_run_argv(data_dir: Path, out_dir: Path, *extra: str) -> list:
    return ["-f", NANO_EXP, "--data-dir", str(data_dir), "-c", "none", "--max-batch", "2", *extra,
            "input_size", "(64,64)", "test_size", "(64,64)", "random_size", "(2,2)", "max_epoch", "1",
            "warmup_epochs", "0", "no_aug_epochs", "0", "eval_interval", "1", "data_num_workers", "0",
            "output_dir", str(out_dir)]


def test_simulated_mps_run_logs_its_decisions_and_the_measured_batch(tmp_path, monkeypatch, no_cuda, one_thread):
    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=16, num_val=2, img_size=64, seed=0)
    policy = build_policy("mps", tensors_on="cpu")
    figures = load_script().main(tiny_run_argv(tmp_path / "data", tmp_path / "out", "-b", "auto"),
                                 policy=policy)
    log = (tmp_path / "out" / "yolox_nano_crater" / "train_log.txt").read_text()
    assert "crater plan: device: cpu (rules: mps)" in log
    assert "crater plan: AMP: off" in log
    assert "crater plan: DDP: off" in log
    assert "crater plan: pin_memory: off" in log
    assert "crater plan: cache release every: 10" in log
    # the batch came from the measurement: the probe table and the reason are logged
    assert "autobatch on mps" in log and "peak MiB" in log
    assert "crater plan: batch: 2  (batch 2: largest multiple of 8 (or power of 2 below it)" in log
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
    with pytest.raises(SystemExit) as error:
        load_script().main(["-c", "weights/yolox_m.pth"])
    message = str(error.value)
    assert "weights/yolox_m.pth not found" in message
    assert "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_m.pth" in message
    assert "-c none" in message


def test_given_data_dir_must_exist(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="--data-dir .*missing_folder not found"):
        load_script().main(["-c", "none", "--data-dir", str(tmp_path / "missing_folder"),
                            "output_dir", str(tmp_path / "out")])


def test_batch_argument_parsing():
    script = load_script()
    assert script.parse_batch("auto") is None and script.parse_batch("16") == 16
    with pytest.raises(SystemExit, match="positive number or 'auto'"):
        script.parse_batch("many")
    with pytest.raises(SystemExit, match="at least 1"):
        script.parse_batch("0")


def test_plots_without_matplotlib_skip_the_curves_with_a_hint(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from tests.conftest import loguru_messages

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # an import of it now raises ImportError
    dataset = SimpleNamespace(ids=[])
    trainer = SimpleNamespace(loss_history=[{"iteration": 1, "total_loss": 3.0}], ap_history=[],
                              file_name=str(tmp_path), evaluator=SimpleNamespace(
                                  dataloader=SimpleNamespace(dataset=dataset)))
    with loguru_messages("WARNING") as warnings:
        written = load_script().save_plots(trainer, SimpleNamespace(exp_name="demo", last_eval_outputs={}))
    assert written == []
    assert warnings == ['curves.png skipped: the training-curves PNG needs matplotlib, which is not installed: '
                        'pip install matplotlib  (or pip install -e ".[plots]")']


class MemoryFedDetector(torch.nn.Module):
    """A training step whose peak memory is 200 MiB + 50 MiB per image on the fake memory backend."""

    def __init__(self, memory):
        super().__init__()
        self.memory = memory
        self.conv = torch.nn.Conv2d(3, 1, 1)

    def forward(self, images, labels=None):
        self.memory.use((200 + 50 * images.shape[0]) << 20)
        return {"total_loss": self.conv(images / 255.0).mean() + 0 * labels.sum()}


@pytest.mark.parametrize("world_size, max_batch, per_device", [(1, 256, 56), (2, 256, 56), (2, 16, 8)])
def test_auto_batch_is_measured_per_device_and_multiplied_by_the_world_size(world_size, max_batch, per_device):
    from types import SimpleNamespace

    from tests.conftest import loguru_messages
    from tests.utils.test_autobatch import FakeMemory

    memory = FakeMemory(4000 << 20)
    policy = build_policy("cpu", memory=memory)
    exp = SimpleNamespace(get_model=lambda: MemoryFedDetector(memory), input_size=(32, 32), num_classes=1,
                          max_labels=5, basic_lr_per_img=0.01)
    args = SimpleNamespace(batch_size="auto", max_batch=max_batch, demo=False, grad_ckpt=False,
                           target_mem_fraction=0.8)
    script = load_script()
    # (0.8 x 4000 - 200) / 50 = 60 images per device -> 56; --max-batch caps the total batch
    batch, decision = script.choose_batch(exp, args, policy, world_size, label_stats=(3, 100_000))
    assert (decision.batch_size, batch) == (per_device, per_device * world_size)
    with loguru_messages("INFO") as messages:
        script.log_plan(policy, batch, decision, exp, world_size)
    line = next(message for message in messages if message.startswith("crater plan: batch: "))
    expected = (f"batch: {batch}  (" if world_size == 1 else
                f"batch: per device {per_device} x {world_size} devices = {batch}  (measured once on cpu")
    assert line.startswith(f"crater plan: {expected}"), line


def test_requested_batch_is_split_over_the_devices_and_must_divide():
    from types import SimpleNamespace

    from tests.utils.test_autobatch import FakeMemory

    memory = FakeMemory(4000 << 20)
    policy = build_policy("cpu", memory=memory)
    exp = SimpleNamespace(get_model=lambda: MemoryFedDetector(memory), input_size=(32, 32), num_classes=1,
                          max_labels=5)
    args = SimpleNamespace(batch_size="16", max_batch=None, demo=False, grad_ckpt=False, target_mem_fraction=0.8)
    script = load_script()
    batch, decision = script.choose_batch(exp, args, policy, 2, label_stats=(3, 1000))
    assert (batch, decision.batch_size) == (16, 8) and decision.reason.startswith("-b 8 as requested")
    args.batch_size = "15"
    with pytest.raises(SystemExit, match="-b 15 with -d 2: give a multiple of 2"):
        script.choose_batch(exp, args, policy, 2, label_stats=(3, 1000))


def test_eval_tool_on_best_ckpt_reproduces_the_best_figure(tmp_path, monkeypatch, one_thread):
    import json
    import re

    from tests.tools.conftest import load_tool

    monkeypatch.chdir(tmp_path)
    generate_synthetic_craters(tmp_path / "data", num_train=16, num_val=4, img_size=64, seed=0)
    argv = tiny_run_argv(tmp_path / "data", tmp_path / "out", "-b", "4", "--device", "cpu")
    argv[argv.index("max_epoch") + 1] = "3"
    # a few steps from scratch score below the usual threshold: keep every box so that AP is not 0
    argv += ["test_conf", "1e-6"]
    load_script().main(argv)
    run_dir = tmp_path / "out" / "yolox_nano_crater"
    best = json.loads((run_dir / "run_summary.json").read_text())["best"]
    assert best["AP50"] > 0  # a figure of 0 would match any checkpoint
    load_tool("eval").run(["-f", NANO_EXP, "-c", str(run_dir / "best_ckpt.pth"), "-b", "4", "--device", "cpu",
                           "data_dir", str(tmp_path / "data"), "test_size", "(64,64)", "test_conf", "1e-6",
                           "output_dir", str(tmp_path / "out")])
    figures = re.findall(r"AP50:95 ([0-9.]+), AP50 ([0-9.]+)", (run_dir / "val_log.txt").read_text())
    assert [float(value) for value in figures[-1]] == [round(best["AP50:95"], 6), round(best["AP50"], 6)]


def test_scratch_plan_picks_adamw_and_its_lr_unless_the_command_line_sets_them():
    script = load_script()
    from yolox.exp import get_exp

    exp = get_exp(str(REPO / "exps" / "crater" / "yolox_s_crater.py"))
    reasons = script.apply_scratch_schedule(exp, batch=16, train_images=777, overridden=set())
    assert exp.optimizer_type == "adamw" and "AdamW" in reasons["optimizer_type"]
    assert exp.basic_lr_per_img * 16 == pytest.approx(0.0025)
    assert "basic_lr_per_img" in reasons

    exp = get_exp(str(REPO / "exps" / "crater" / "yolox_s_crater.py"))
    exp.basic_lr_per_img = 0.02 / 64
    reasons = script.apply_scratch_schedule(exp, batch=16, train_images=777, overridden={"basic_lr_per_img"})
    assert exp.optimizer_type == "adamw" and exp.basic_lr_per_img == 0.02 / 64
    assert "basic_lr_per_img" not in reasons

    exp = get_exp(str(REPO / "exps" / "crater" / "yolox_s_crater.py"))
    reasons = script.apply_scratch_schedule(exp, batch=16, train_images=777, overridden={"optimizer_type"})
    assert exp.optimizer_type == "sgd" and "optimizer_type" not in reasons


def test_scratch_model_gets_the_stride_4_level_unless_the_command_line_says_otherwise():
    script = load_script()
    from yolox.exp import get_exp

    exp = get_exp(str(REPO / "exps" / "crater" / "yolox_s_crater.py"))
    with torch.device("meta"):
        exp.get_model()
    reasons = script.apply_scratch_model(exp, overridden=set())
    assert exp.p2_head and "0.712" in reasons["p2_head"] and "model" not in exp.__dict__

    exp = get_exp(str(REPO / "exps" / "crater" / "yolox_s_crater.py"))
    assert script.apply_scratch_model(exp, overridden={"p2_head"}) == {} and not exp.p2_head
