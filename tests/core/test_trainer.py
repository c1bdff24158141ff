"""Trainer mechanics on the tiny COCO set with the millisecond TinyDetector (see tiny_coco.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.core.conftest import train_args
from tests.fixtures.tiny_coco import KILL_HOOK, OOM_HOOK, TINY_MODEL, write_exp_file
from yolox.core.trainer import Trainer, TrainingOutOfMemory
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def run_trainer(exp_file, policy=None, **arg_overrides):
    exp = get_exp(str(exp_file))
    trainer = Trainer(exp, train_args(**arg_overrides), policy=policy or build_policy("cpu"))
    trainer.train()
    return trainer


def test_cpu_run_writes_checkpoints_log_and_switches_to_no_aug(tiny_exp_file):
    trainer = run_trainer(tiny_exp_file)
    out = trainer.file_name
    names = {"latest_ckpt.pth", "last_epoch_ckpt.pth", "epoch_1_ckpt.pth", "epoch_2_ckpt.pth",
             "last_mosaic_epoch_ckpt.pth"}
    import os
    assert names <= set(os.listdir(out))
    log = open(os.path.join(out, "train_log.txt")).read()
    assert "device policy: device = cpu" in log
    assert "epoch: 1/2, iter: 2/3" in log and "ETA: " in log and "lr: " in log and "total_loss: " in log
    assert " img/s, ETA: " in log
    assert "rss: " in log  # the CPU policy's memory line
    assert "--->No mosaic aug now!" in log and "Add additional L1 loss" in log
    assert trainer.model.head.use_l1 and trainer.exp.eval_interval == 1
    ckpt = torch.load(os.path.join(out, "latest_ckpt.pth"), weights_only=True)
    assert ckpt["start_epoch"] == 2 and ckpt["iteration"] == 6 and ckpt["samples_seen"] == 24
    # EMA weights under "model" (upstream), live weights alongside for exact resume
    ema_state = trainer.ema_model.ema.state_dict()
    assert all(torch.equal(ckpt["model"][k], ema_state[k]) for k in ema_state)
    assert not torch.equal(ckpt["model"]["head.pred.weight"], ckpt["train_model"]["head.pred.weight"])
    assert ckpt["ema_updates"] == 6 and trainer.cache_releases == 0
    # lr follows the schedule at batch 4: 0.01/8 per image, end of run = min lr
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.005 * 0.05)


def test_no_aug_epochs_zero_keeps_mosaic_and_no_l1_to_the_last_epoch(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.no_aug_epochs = 0
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    trainer.train()
    assert trainer.epoch + 1 == exp.max_epoch == 2
    assert not trainer.mosaic_closed and not trainer.model.head.use_l1
    assert "No mosaic aug now" not in open(f"{trainer.file_name}/train_log.txt").read()


def test_lr_is_zero_on_first_step_and_rises_in_warmup(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 1
    exp.no_aug_epochs = 0
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    trainer.before_train()
    trainer.epoch = 0
    trainer.before_epoch()
    lrs = []
    for trainer.iter in range(trainer.max_iter):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_one_iter()
    assert lrs[0] == 0.0 and 0 < lrs[1] < lrs[2]
    assert trainer.samples_seen == 12


@pytest.mark.parametrize("fused", [True, False])
def test_trainer_sets_the_policy_bn_act_kernel_and_trains_through_it(tiny_exp_file, fused):
    from yolox.models.network_blocks import BaseConv

    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 1
    exp.no_aug_epochs = 0
    policy = build_policy("cpu", fused_bn_act=fused)
    trainer = Trainer(exp, train_args(), policy=policy)
    trainer.before_train()
    conv = trainer.model.backbone
    assert isinstance(conv, BaseConv) and conv.fused_bn_act is policy.fused_bn_act is fused
    trainer.epoch = trainer.iter = 0
    trainer.before_epoch()
    trainer.train_one_iter()
    assert int(conv.bn.num_batches_tracked) == 1 and torch.isfinite(conv.bn.running_var).all()


class RaisingOOM(torch.nn.Module):
    """Wraps a model; raises `error` whenever a training batch has at least `limit` images."""

    def __init__(self, model, error, limit):
        super().__init__()
        self.inner = model
        self.error = error
        self.limit = limit
        self.calls = []

    @property
    def head(self):
        return self.inner.head

    def forward(self, x, targets=None):
        self.calls.append(x.shape[0])
        if self.training and x.shape[0] >= self.limit:
            raise self.error
        return self.inner(x, targets)


OOM_ERRORS = {
    "cuda": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total)"),
    "mps": RuntimeError("MPS backend out of memory (MPS allocated: 45.59 GiB, other allocations: 1.2 GiB, "
                        "max allowed: 47.74 GiB). Tried to allocate 1.00 GiB on private pool."),
    "cpu": RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                        "you tried to allocate 123456789 bytes. Error code 12 (Cannot allocate memory)"),
}


def oom_exp(exp_file, error, limit):
    exp = get_exp(str(exp_file))
    exp.max_epoch = 2
    base_get_model = exp.get_model

    def get_model():
        if "wrapped" not in exp.__dict__:
            exp.wrapped = RaisingOOM(base_get_model(), error, limit)
        return exp.wrapped

    exp.get_model = get_model
    return exp


@pytest.mark.parametrize("kind", sorted(OOM_ERRORS))
def test_out_of_memory_halves_batch_rescales_lr_and_continues(tiny_exp_file, kind):
    exp = oom_exp(tiny_exp_file, OOM_ERRORS[kind], limit=4)
    trainer = Trainer(exp, train_args(batch_size=4), policy=build_policy("cpu"))
    trainer.train()
    assert trainer.oom_recoveries == 1 and trainer.batch_size == 2
    assert trainer.lr_scheduler.lr == pytest.approx(exp.basic_lr_per_img * 2)
    # the failed batch is retried at half size: 12 images per epoch, 6 iterations of 2
    assert exp.wrapped.calls[0] == 4 and set(exp.wrapped.calls[1:]) == {2}
    assert trainer.max_iter == 6 and trainer.samples_seen == 24
    log = open(f"{trainer.file_name}/train_log.txt").read()
    assert "continuing at batch size 2" in log and "base lr 5.000e-03 -> 2.500e-03" in log


def test_out_of_memory_mid_epoch_keeps_stream_position(tiny_exp_file):
    exp = oom_exp(tiny_exp_file, OOM_ERRORS["cpu"], limit=99)
    trainer = Trainer(exp, train_args(batch_size=4), policy=build_policy("cpu"))
    trainer.before_train()
    trainer.epoch = 0
    trainer.before_epoch()
    trainer.iter = 0
    trainer.train_one_iter()
    trainer.iter = 1
    exp.wrapped.limit = 4
    assert not trainer._run_iter_or_recover()
    assert (trainer.batch_size, trainer.iter, trainer.max_iter, trainer.samples_seen) == (2, 2, 6, 4)
    assert trainer.train_loader.batch_sampler.sampler.start == 4


def test_out_of_memory_at_batch_one_stops_with_clear_message(tiny_exp_file):
    exp = oom_exp(tiny_exp_file, OOM_ERRORS["mps"], limit=1)
    trainer = Trainer(exp, train_args(batch_size=2), policy=build_policy("cpu"))
    with pytest.raises(TrainingOutOfMemory, match="Cannot shrink the batch below one image"):
        trainer.train()
    assert exp.wrapped.calls == [2, 1]


@pytest.mark.slow
def test_out_of_memory_on_one_of_two_gloo_ranks_halves_the_batch_on_both(tmp_path, tiny_coco_dir):
    """Rank 1 alone runs out of memory, once in forward and once in backward: no hang, both ranks halve."""
    exp_file = write_exp_file(tmp_path / "oom_exp.py", tiny_coco_dir, tmp_path / "out",
                              extra=TINY_MODEL + OOM_HOOK + KILL_HOOK)
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1", OOM_RANK="1", OOM_STEPS="2:forward,4:backward")
    result = subprocess.run([sys.executable, str(repo / "tools" / "train.py"), "-f", str(exp_file), "-d", "2",
                             "-b", "8", "--device", "cpu", "-expn", "oom"],
                            capture_output=True, text=True, timeout=300, env=env, cwd=str(repo))
    assert result.returncode == 0, result.stderr[-4000:]
    out = tmp_path / "out" / "oom"
    ends = [json.loads((out / f"final_rank{rank}.json").read_text()) for rank in (0, 1)]
    # per rank 4 -> 2 -> 1 images; 6 images of each rank's shard per epoch, 2 epochs
    assert ends[0] == ends[1] == {"batch_size": 2, "samples_seen": 12, "oom_recoveries": 2}
    weights = [torch.load(out / f"final_rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    log = (out / "train_log.txt").read_text()
    assert "Out of memory at batch size 8 (out of memory on rank 1); continuing at batch size 4" in log
    assert "Out of memory at batch size 4 (out of memory on rank 1); continuing at batch size 2" in log


def test_other_errors_are_not_swallowed(tiny_exp_file):
    exp = oom_exp(tiny_exp_file, ValueError("bad labels"), limit=1)
    with pytest.raises(ValueError, match="bad labels"):
        Trainer(exp, train_args(), policy=build_policy("cpu")).train()



def test_an_upstream_get_data_loader_without_start_still_trains(tiny_exp_file):
    """Exp files written for upstream override get_data_loader(batch_size, is_distributed, no_aug, cache_img)."""
    base = get_exp(str(tiny_exp_file))
    calls = []

    class UpstreamStyleExp(type(base)):
        def get_data_loader(self, batch_size, is_distributed, no_aug=False, cache_img=None):
            calls.append(no_aug)
            return super().get_data_loader(batch_size, is_distributed, no_aug=no_aug, cache_img=cache_img)

    exp = UpstreamStyleExp()
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    trainer.train()
    assert calls == [False, True]  # the mosaic phase, then the rebuilt no-aug loader
    assert os.path.exists(os.path.join(trainer.file_name, "latest_ckpt.pth"))


def test_device_augment_trains_through_the_no_aug_switch(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.device_augment = True
    trainer = Trainer(exp, train_args(), policy=build_policy("cpu"))
    trainer.train()
    assert trainer.train_loader.batch_transform is not None and trainer.mosaic_closed
    assert not trainer.train_loader.batch_sampler.mosaic  # the rebuilt loader ships mosaic off in its meta
    log = open(os.path.join(trainer.file_name, "train_log.txt")).read()
    assert "--->No mosaic aug now!" in log and "total_loss: nan" not in log
    assert trainer.samples_seen == 24


def test_trainer_trains_a_compiled_model_and_recovers_from_out_of_memory(tiny_exp_file):
    exp = oom_exp(tiny_exp_file, OOM_ERRORS["cpu"], limit=4)
    trainer = Trainer(exp, train_args(batch_size=4), policy=build_policy("cpu", compile_model=True))
    trainer.train()
    # torch.compile runs the wrapper's Python (its call log, the raise) and compiles the TinyDetector inside
    assert trainer.model._compiled_call_impl is not None and trainer.ema_model.ema._compiled_call_impl is None
    assert trainer.oom_recoveries == 1 and trainer.batch_size == 2 and trainer.samples_seen == 24
