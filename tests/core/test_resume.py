"""Exact resume after SIGKILL, atomic checkpoint writes, and resuming upstream-format checkpoints."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from tests.core.conftest import train_args
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_KEYS = ("start_epoch", "model", "optimizer", "best_ap", "curr_ap")


def train_cli(exp_file, expn, *extra, kill_after=None):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("KILL_AFTER_EPOCH", None)
    if kill_after is not None:
        env["KILL_AFTER_EPOCH"] = str(kill_after)
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "-f", str(exp_file), "-b", "2", "--device", "cpu",
           "-expn", expn, *extra, "max_epoch", "3"]
    return subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=600)


class Stop(Exception):
    pass


class StoppingTrainer(Trainer):
    def __init__(self, *args, stop_after_epoch=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_after_epoch = stop_after_epoch

    def after_epoch(self):
        super().after_epoch()
        if self.epoch + 1 == self.stop_after_epoch:
            raise Stop()


def run_in_process(exp_file, expn, stop_after_epoch=None, **overrides):
    exp = get_exp(str(exp_file))
    exp.max_epoch = 3
    exp.save_latest_every_s = 0     # a resume point after every epoch, so the stop after epoch 2 resumes there
    policy = build_policy("cpu")
    policy.seed_everything(exp.seed, deterministic=True)  # what tools/train.py does before training
    trainer = StoppingTrainer(exp, train_args(experiment_name=expn, batch_size=2, **overrides),
                              policy=policy, stop_after_epoch=stop_after_epoch)
    if stop_after_epoch is None:
        trainer.train()
    else:
        with pytest.raises(Stop):
            trainer.train()
    return trainer


def test_interrupted_then_resumed_run_matches_unbroken_run_in_process(tiny_exp_file):
    reference = run_in_process(tiny_exp_file, "unbroken")
    run_in_process(tiny_exp_file, "broken", stop_after_epoch=2)
    resumed = run_in_process(tiny_exp_file, "broken", resume=True)
    assert resumed.start_epoch == 2
    for (key, value), other in zip(reference.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(value, other), key
    for value, other in zip(reference.ema_model.ema.state_dict().values(), resumed.ema_model.ema.state_dict().values()):
        assert torch.equal(value, other)
    assert reference.samples_seen == resumed.samples_seen == 36


def test_sigkill_then_resume_matches_unbroken_run(tiny_exp_file):
    out = tiny_exp_file.parent / "out"
    unbroken = train_cli(tiny_exp_file, "unbroken")
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]

    first = train_cli(tiny_exp_file, "broken", kill_after=1)
    assert first.returncode == -signal.SIGKILL
    latest = out / "broken" / "latest_ckpt.pth"
    assert torch.load(latest, weights_only=True)["start_epoch"] == 1
    # killed again after the mosaic-off switch epoch, then resumed to the end
    second = train_cli(tiny_exp_file, "broken", "--resume", "-c", str(latest), kill_after=2)
    assert second.returncode == -signal.SIGKILL, second.stderr[-3000:]
    third = train_cli(tiny_exp_file, "broken", "--resume")
    assert third.returncode == 0, third.stderr[-3000:]

    reference = torch.load(out / "unbroken" / "final_rank0.pt", weights_only=True)
    resumed = torch.load(out / "broken" / "final_rank0.pt", weights_only=True)
    for key, value in reference.items():
        assert torch.equal(value, resumed[key]), key
    ref_ckpt = torch.load(out / "unbroken" / "latest_ckpt.pth", weights_only=True)
    res_ckpt = torch.load(out / "broken" / "latest_ckpt.pth", weights_only=True)
    for key, value in ref_ckpt["model"].items():
        assert torch.equal(value, res_ckpt["model"][key]), f"EMA {key}"
    assert ref_ckpt["iteration"] == res_ckpt["iteration"] == 18
    assert ref_ckpt["input_size"] == res_ckpt["input_size"]
    log = (out / "unbroken" / "train_log.txt").read_text()
    assert "size: 96" in log and ref_ckpt["ema_updates"] == res_ckpt["ema_updates"] == 18


KILL_DURING_SAVE = textwrap.dedent('''
    import os, signal, sys, torch
    from yolox.utils.checkpoint import save_checkpoint

    save_dir = sys.argv[1]
    save_checkpoint({"start_epoch": 1, "model": {"w": torch.ones(3)}}, False, save_dir, "latest")

    def dying_save(obj, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"PK\\x03\\x04 half a checkpoint")
            handle.flush()
            os.fsync(handle.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dying_save
    save_checkpoint({"start_epoch": 2, "model": {"w": torch.zeros(3)}}, False, save_dir, "latest")
''')


def test_kill_during_save_leaves_previous_checkpoint_readable(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr
    ckpt = torch.load(tmp_path / "latest_ckpt.pth", weights_only=True)
    assert ckpt["start_epoch"] == 1 and torch.equal(ckpt["model"]["w"], torch.ones(3))


def test_upstream_format_checkpoint_resumes(tiny_exp_file, tmp_path):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 1
    first = Trainer(exp, train_args(experiment_name="first"), policy=build_policy("cpu"))
    first.train()
    full = torch.load(Path(first.file_name) / "latest_ckpt.pth", weights_only=True)
    upstream_ckpt = tmp_path / "upstream.pth"
    torch.save({key: full[key] for key in UPSTREAM_KEYS}, upstream_ckpt)

    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 2
    resumed = Trainer(exp, train_args(experiment_name="second", resume=True, ckpt=str(upstream_ckpt)),
                      policy=build_policy("cpu"))
    resumed.before_train()
    assert resumed.start_epoch == 1
    # upstream semantics: the saved (EMA) weights become the live weights, EMA ramp continues
    assert torch.equal(resumed.model.head.pred.weight, full["model"]["head.pred.weight"])
    assert resumed.ema_model.updates == resumed.max_iter * 1
    # the data stream continues where an unbroken run would be
    assert resumed.samples_seen == 12 and resumed.train_loader.batch_sampler.sampler.start == 12
    resumed.train_in_epoch()
    assert resumed.samples_seen == 24


def test_start_epoch_flag_overrides_checkpoint(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 1
    first = Trainer(exp, train_args(experiment_name="first"), policy=build_policy("cpu"))
    first.train()
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch = 3
    resumed = Trainer(exp, train_args(experiment_name="first", resume=True, start_epoch=3),
                      policy=build_policy("cpu"))
    resumed.before_train()
    assert resumed.start_epoch == 2 and resumed.no_aug
    assert resumed.samples_seen == 2 * resumed.max_iter * 4


def test_unsafe_checkpoint_is_refused_without_trust(tiny_exp_file, tmp_path):
    import argparse
    bad = tmp_path / "pickled.pth"
    torch.save({"model": {}, "extra": argparse.Namespace(a=1)}, bad)
    exp = get_exp(str(tiny_exp_file))
    trainer = Trainer(exp, train_args(experiment_name="bad", ckpt=str(bad)), policy=build_policy("cpu"))
    from yolox.utils.checkpoint import UnsafeCheckpointError
    with pytest.raises(UnsafeCheckpointError, match="--trust-ckpt"):
        trainer.before_train()


def train_two_ranks(exp_file, expn, *extra, kill_rank_after=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    env.pop("KILL_AFTER_EPOCH", None)
    if kill_rank_after is not None:
        env["KILL_RANK"], env["KILL_AFTER_EPOCH"] = (str(value) for value in kill_rank_after)
    cmd = [sys.executable, str(REPO / "tools" / "train.py"), "-f", str(exp_file), "-d", "2", "-b", "4",
           "--device", "cpu", "-expn", expn, *extra]
    return subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_killed_rank_stops_the_other_and_resume_matches_unbroken_two_rank_run(tiny_exp_file):
    out = tiny_exp_file.parent / "out"
    unbroken = train_two_ranks(tiny_exp_file, "unbroken")
    assert unbroken.returncode == 0, unbroken.stderr[-3000:]

    broken = train_two_ranks(tiny_exp_file, "broken", kill_rank_after=(1, 1))
    ended = time.time()
    assert broken.returncode == 1, broken.stderr[-3000:]
    assert ended - float((out / "broken" / "killed_rank1.txt").read_text()) < 60
    reports = [line for line in broken.stderr.splitlines() if "was killed by" in line]
    assert len(reports) == 1 and "rank 1 (pid " in reports[0] and "SIGKILL" in reports[0], broken.stderr[-3000:]
    assert "Traceback" not in broken.stderr.split(reports[0])[1]  # the launcher adds no traceback of its own
    assert torch.load(out / "broken" / "latest_ckpt.pth", weights_only=True)["start_epoch"] == 1

    resumed = train_two_ranks(tiny_exp_file, "broken", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = torch.load(out / "unbroken" / "final_rank0.pt", weights_only=True)
    for rank in (0, 1):
        weights = torch.load(out / "broken" / f"final_rank{rank}.pt", weights_only=True)
        for key, value in reference.items():
            assert torch.equal(value, weights[key]), f"rank {rank} {key}"
    ref_ema = torch.load(out / "unbroken" / "latest_ckpt.pth", weights_only=True)["model"]
    res_ema = torch.load(out / "broken" / "latest_ckpt.pth", weights_only=True)["model"]
    for key, value in ref_ema.items():
        assert torch.equal(value, res_ema[key]), f"EMA {key}"


def test_the_resume_checkpoint_is_written_by_time_and_at_the_end(tiny_exp_file):
    exp = get_exp(str(tiny_exp_file))
    exp.max_epoch, exp.save_latest_every_s = 4, 3600
    trainer = Trainer(exp, train_args(experiment_name="cadence"), policy=build_policy("cpu"))
    written = []
    real_save = trainer.checkpointer.save
    trainer.checkpointer.save = lambda name, state, best=False: written.append((name, state["start_epoch"])) or \
        real_save(name, state, best)
    trainer.train()
    # latest after the first epoch (nothing older to resume) and at the end; the final one at the end
    assert [epoch for name, epoch in written if name == "latest"] == [1, 4]
    assert [epoch for name, epoch in written if name == "last_epoch"] == [4]
