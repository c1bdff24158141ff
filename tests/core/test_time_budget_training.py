"""`--time` in the trainer: the plan line, a run that ends inside its budget counted from the command's start,
resume within what is left."""
import json
import os
import time

import torch

from tests.conftest import loguru_messages
from tests.core.conftest import train_args
from yolox.core.budget import CHECKPOINT_SECONDS, TEARDOWN_SECONDS
from yolox.core.trainer import Trainer
from yolox.exp import get_exp
from yolox.utils.device import build_policy


def timed_run(exp_file, started_before: float = 0.0, **overrides):
    exp = get_exp(str(exp_file))
    exp.print_interval = 1
    options = train_args(started_at=time.time() - started_before, **overrides)
    trainer = Trainer(exp, options, policy=build_policy("cpu"))
    with loguru_messages("INFO") as messages:
        trainer.train()
    return trainer, messages


def test_a_timed_run_plans_its_epochs_and_ends_inside_the_budget(tiny_exp_file):
    trainer, messages = timed_run(tiny_exp_file, time="10s")
    plans = [m for m in messages if m.startswith("time: 10 s -> ")]
    assert plans and " epochs at " in plans[0] and "% of the budget)" in plans[0]
    assert trainer.max_epoch > 2    # the exp's 2 epochs take well under a second: the plan fills the budget
    spent = trainer.clock.spent()
    # the budget is used, not overrun: training ends where the final checkpoint and the exit still fit
    assert 10.0 - TEARDOWN_SECONDS - CHECKPOINT_SECONDS - 1.0 < spent <= 10.0, spent
    assert any(m.startswith("time: ") and "budget used" in m and "inside it" in m for m in messages)
    ckpt = torch.load(os.path.join(trainer.file_name, "latest_ckpt.pth"), weights_only=True)
    assert ckpt["time_budget"] == 10.0 and 0 < ckpt["time_spent"] <= 10.0
    assert trainer.eval_history and trainer.eval_history[-1]["epoch"] == ckpt["start_epoch"]
    wall = json.loads(open(os.path.join(trainer.file_name, "wall_clock.json")).read())
    assert wall["budget_s"] == 10.0 and wall["phases_s"]["train_steps"] > 0 and wall["wall_s"] <= 10.0


def test_time_spent_before_training_counts(tiny_exp_file):
    trainer, _ = timed_run(tiny_exp_file, started_before=4.0, time="8s")
    assert trainer.clock.spent() <= 8.0
    # half the budget went before training: the plan fits what is left, not 8 s of epochs
    assert trainer.train_seconds < 4.0


def test_max_epoch_given_caps_the_plan(tiny_exp_file):
    trainer, _ = timed_run(tiny_exp_file, time="30s", time_max_epoch=3)
    assert trainer.max_epoch == 3 and trainer.epoch + 1 == 3
    assert trainer.clock.spent() < 30


def test_resume_continues_within_what_is_left(tiny_exp_file):
    first, _ = timed_run(tiny_exp_file, time="4s")
    resumed, messages = timed_run(tiny_exp_file, resume=True)      # no --time: the checkpoint's budget
    assert resumed.clock.budget_seconds == 4.0
    assert resumed.clock.spent_before > 0
    assert any("the budget is already spent" in m for m in messages) or resumed.epoch >= first.epoch
